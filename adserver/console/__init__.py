"""The marketers' console: accounts and sessions, pre-aggregated metrics with attribution, the
``/reports`` dashboard and the ``/api/v1/reports`` API (see docs/reports.md)."""

from __future__ import annotations

from flask import Flask

from tracker.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Register the dashboard and the API, and configure the signed session cookie."""
    from adserver.console import api, auth, views

    auth.configure(app, settings.secret_keys, settings.cookie_secure)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
