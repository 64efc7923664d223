"""``create_app``: settings, services and blueprints wired into one Flask app."""

from __future__ import annotations

import logging

from flask import Flask

from tracker.settings import Settings, load_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, start_writer: bool | None = None) -> Flask:
    """Build the app. Settings are validated here, so a bad configuration fails at start-up.

    In embedded mode the schema is migrated and the event writer runs as a thread of this process
    (chdb allows one process per data path); pass ``start_writer=False`` to skip the writer. With both
    stores on servers it refuses to start while a migration is pending (``python -m adserver migrate``).
    """
    from adserver import console, demo, health, limits, metrics
    from adserver.campaigns import api as campaigns_api
    from adserver.campaigns import pages as campaign_pages
    from adserver.catalog import upload
    from adserver.services import Services
    from adserver.serving import feedback, pubjs
    from adserver.serving import images as product_images
    from adserver.serving import views as serving
    from adserver.tracking import conversions, privacy, viewability
    from adserver.tracking import views as tracking

    settings = settings or load_settings()
    if settings.fetch_allow_loopback:
        log.warning("ADSERVER_FETCH_ALLOW_LOOPBACK is on: product images may be fetched from loopback addresses, "
                    "so a feed can make this server read its own local services. Tests and the demo only: "
                    "never on a server that imports feeds it does not control.")
    app = Flask(__name__)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    services = app.extensions["adserver"] = Services(settings)
    metrics.init_app(app, services)  # first, so its timer starts before any other hook runs
    limits.init_app(app)  # request bodies: 64 KB, more only where a view says so (the feed upload)
    for blueprint in (tracking.bp, privacy.bp, serving.bp, upload.bp, health.bp, viewability.bp, pubjs.bp,
                      product_images.bp, feedback.bp):
        app.register_blueprint(blueprint)
    if settings.demo:  # ADSERVER_DEMO: by default only in embedded mode; a server has no /demo/ pages
        app.register_blueprint(demo.bp)
    console.init_app(app, settings)
    app.register_blueprint(campaign_pages.bp)
    app.register_blueprint(campaigns_api.bp)
    app.register_blueprint(conversions.bp)
    from adserver.tracking.pixel import PixelEndpoint

    app.wsgi_app = PixelEndpoint(app, app.wsgi_app)  # the pixel is answered before Flask (see there)

    @app.get("/")
    def index():
        from flask import render_template

        return render_template("index.html", demo=settings.demo)

    if settings.embedded:
        _start_embedded(app, services, start_writer)
    else:
        _require_current_schema(services.ch)
    return app


def _require_current_schema(ch) -> None:
    """Refuse to serve on a schema older than this code (``SchemaNotCurrent``): ``migrate`` alone migrates.

    A ClickHouse that cannot be reached does not stop the start: pixels and ads work without it (events
    wait in the stream), and the writer, which needs the schema, checks it again when it starts.
    """
    from tracker import schema
    from tracker.errors import StoreUnavailable

    try:
        schema.require_current(ch)
    except StoreUnavailable as exc:
        log.warning("could not check the ClickHouse schema at start (%s); serving anyway", exc)


def _start_embedded(app: Flask, services, start_writer: bool | None) -> None:
    from tracker import schema
    from tracker.partitions import Partitions
    from tracker.writer import start_thread
    from tracker.writer.fleet import partition_writers

    settings = services.settings
    ch = services.ch
    ch.create_database()
    schema.migrate(ch)
    if start_writer is None:
        start_writer = settings.embedded_writer
    if start_writer:
        writers = partition_writers(services.stores.redis("writer"), ch,
                                    Partitions(settings.stream_key, settings.stream_partitions),
                                    list(range(settings.stream_partitions)), settings.writer_name,
                                    settings.writer_batch_size, settings.writer_batch_seconds,
                                    forget_interval=settings.forget_interval)
        app.extensions["adserver_writer"] = writers[0]
        for writer in writers:  # every partition
            start_thread(writer)
