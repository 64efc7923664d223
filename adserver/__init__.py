"""The ad server web app: ``create_app()`` is what gunicorn and ``make run`` serve."""

from __future__ import annotations

import logging

from flask import Flask

from tracker.settings import Settings, load_settings, set_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, start_writer: bool | None = None) -> Flask:
    """Build the app. Settings are validated here, so a bad configuration fails at start-up.

    In embedded mode the schema is migrated and the event writer runs as a thread of this process
    (chdb allows one process per data path); pass ``start_writer=False`` to skip the writer.
    """
    from adserver import ads, demo, feeds, health, publisher, tracking
    from adserver.services import Services

    settings = settings or load_settings()
    set_settings(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 50 * 1024 * 1024
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["adserver"] = Services(settings)
    for blueprint in (tracking.bp, ads.bp, feeds.bp, health.bp, demo.bp, publisher.bp):
        app.register_blueprint(blueprint)
    from adserver import reports

    reports.init_app(app, settings)
    from adserver.pixel import PixelEndpoint

    app.wsgi_app = PixelEndpoint(app, app.wsgi_app)  # the pixel is answered before Flask (see there)

    @app.get("/")
    def index():
        from flask import render_template

        return render_template("index.html")

    if settings.embedded:
        _start_embedded(app, settings, start_writer)
    return app


def _start_embedded(app: Flask, settings: Settings, start_writer: bool | None) -> None:
    from tracker import schema
    from tracker.stores import get_clickhouse, get_redis
    from tracker.writer import BatchWriter, start_thread

    ch = get_clickhouse()
    ch.create_database()
    schema.migrate(ch)
    if start_writer is None:
        start_writer = settings.embedded_writer
    if start_writer:
        writer = BatchWriter(get_redis("writer"), ch, settings.stream_key, settings.writer_name,
                             settings.writer_batch_size, settings.writer_batch_seconds)
        app.extensions["adserver_writer"] = writer
        start_thread(writer)
