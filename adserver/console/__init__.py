"""Marketer reports: accounts, pre-aggregated metrics with attribution, the ``/reports`` dashboard
and the ``/api/v1/reports`` API; campaign management at ``/reports/campaigns`` and
``/api/v1/campaigns``. ``init_app`` wires them into the app (see docs/reports.md)."""

from __future__ import annotations

from flask import Flask

from tracker.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Register the dashboard and the API, and configure the signed session cookie."""
    from adserver.campaigns import api as campaign_api
    from adserver.campaigns import pages as campaign_pages
    from adserver.console import api, auth, views

    del campaign_api, campaign_pages  # imported for their routes on the two blueprints below
    auth.configure(app, settings.secret_keys, settings.cookie_secure)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
