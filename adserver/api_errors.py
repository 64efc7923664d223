"""The JSON error every ``/api/v1`` route answers: ``{"error": <code>, "message": ...}``.

One shape for all token-authenticated APIs (feeds, conversions, reports, campaigns), so a store's
integration handles every failure the same way; a 401 says which bearer realm to authenticate to.
"""

from __future__ import annotations

from flask import Response, jsonify


def api_error(status: int, code: str, message: str, realm: str = "adserver", **extra) -> Response:
    """A JSON error response; ``extra`` fields set to None are left out."""
    response = jsonify({"error": code, "message": message, **{k: v for k, v in extra.items() if v is not None}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer realm="{realm}"'
    return response
