"""Request body sizes: small everywhere, large only where a route says so.

Forms, beacons and API calls fit in a few kilobytes, so every route accepts at most
``DEFAULT_MAX_BODY`` (64 KB); a view that needs more declares it with :func:`accepts_body` (feed
uploads, conversion batches). A body declared larger than its route accepts is answered ``413``
before anything reads it: no form parsing, no CSRF check, no token lookup. A body sent without a
length (chunked) is read through a cap that answers ``413`` once it passes the limit (Werkzeug
alone would end it there silently, and a form cut at 64 KB would be parsed); on routes with the
default limit it is read at once, so that all of them answer 413 alike. nginx applies the same
limits in front (``deploy/nginx/adserver.conf``, ``client_max_body_size``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, Response, current_app, jsonify, render_template_string, request
from werkzeug.exceptions import RequestEntityTooLarge

DEFAULT_MAX_BODY = 64 * 1024
_LIMIT = "adserver.max_body"  # this request's limit, for the 413 answer
View = TypeVar("View", bound=Callable)

_PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Request too large</title>
<h1>Request too large</h1>
<p>{{ message }}</p>
</html>
"""


def accepts_body(max_bytes: int) -> Callable[[View], View]:
    """Let a view take request bodies of up to ``max_bytes`` (instead of ``DEFAULT_MAX_BODY``)."""

    def mark(view: View) -> View:
        view.max_body_bytes = max_bytes
        return view

    return mark


class _Capped(io.RawIOBase):
    """A body without a length, read through a cap: past ``limit`` bytes, 413."""

    def __init__(self, stream, limit: int) -> None:
        self._stream, self._left = stream, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(min(len(buffer), self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise RequestEntityTooLarge()
        buffer[:len(data)] = data
        return len(data)


def _limit() -> None:
    """Before any view: set this request's limit from its route and refuse a larger body."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    limit = getattr(view, "max_body_bytes", None) or current_app.config["MAX_CONTENT_LENGTH"]
    if limit is None:
        return
    request.max_content_length = limit
    request.environ[_LIMIT] = limit
    if request.content_length is not None:
        if request.content_length > limit:
            raise RequestEntityTooLarge()
    elif request.environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
        request.environ["wsgi.input"] = _Capped(request.environ["wsgi.input"], limit)
        request.max_content_length = limit + 1  # Werkzeug's cut (silent) comes after the cap's 413
        if limit <= DEFAULT_MAX_BODY:
            request.get_data(cache=True)  # at most 64 KB: read now, views and forms use this copy


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def _too_large(_error: RequestEntityTooLarge) -> Response:
    limit = request.environ.get(_LIMIT) or request.max_content_length or DEFAULT_MAX_BODY
    message = f"The request body is too large: this address accepts at most {_size(limit)} ({limit} bytes)."
    wants_json = request.path.startswith("/api/") or (
        request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json")
    if wants_json:
        response = jsonify({"error": "too_large", "message": message})
    else:
        response = Response(render_template_string(_PAGE, message=message), mimetype="text/html")
    response.status_code = 413
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = DEFAULT_MAX_BODY
    app.before_request(_limit)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
