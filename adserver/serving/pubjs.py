"""The publisher tag (``/pub.js``).

It turns ``<ins class="adserver-slot" data-placement=… data-size=…>`` elements into sandboxed
``/ad`` iframes, loaded when the slot comes near the viewport, and sends the viewability beacon
(``adserver.tracking.viewability``). Native slots are drawn by ``/pub-native.js``
(``adserver.serving.native``), which it loads only on pages that have one.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_file

bp = Blueprint("pubjs", __name__)

PUB_JS = Path(__file__).parent.parent / "static" / "pub.js"
PUB_NATIVE_JS = PUB_JS.with_name("pub-native.js")


def _script(path: Path) -> Response:
    response = send_file(path, mimetype="application/javascript", max_age=3600)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/pub.js")
def pub_js() -> Response:
    """The publisher tag: cacheable (it holds no per-visitor data) and loadable from any page."""
    return _script(PUB_JS)


@bp.get("/pub-native.js")
def pub_native_js() -> Response:
    """What pub.js loads to draw native slots; cacheable like the tag."""
    return _script(PUB_NATIVE_JS)
