"""The ad server web app: ``create_app()`` is what gunicorn and ``make run`` serve.

The packages follow a request: ``tracking`` (store pages' pixel and tag), ``serving`` (the ad
decision and unit), ``campaigns`` (what advertisers buy), ``catalog`` (their products),
``learning`` (models the decision reads), ``console`` (marketers' reports), ``cli``, ``demo``.
"""

from adserver.app import create_app

__all__ = ["create_app"]
