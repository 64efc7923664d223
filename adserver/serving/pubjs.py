"""The publisher tag (``/pub.js``).

It turns ``<ins class="adserver-slot" data-placement=… data-size=…>`` elements into sandboxed
``/ad`` iframes, loaded when the slot comes near the viewport, and sends the viewability beacon
(``adserver.tracking.viewability``).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_file

bp = Blueprint("pubjs", __name__)

PUB_JS = Path(__file__).parent.parent / "static" / "pub.js"


@bp.get("/pub.js")
def pub_js() -> Response:
    """The publisher tag: cacheable (it holds no per-visitor data) and loadable from any page."""
    response = send_file(PUB_JS, mimetype="application/javascript", max_age=3600)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
