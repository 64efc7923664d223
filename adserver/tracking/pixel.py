"""The tracking pixel (``GET /px.gif``), answered by a WSGI layer in front of Flask.

Why not a Flask view: the pixel is the busiest endpoint by far (every page view of every store)
and its own work is small: verify the cookie, check the parameters, append one event. As a view,
Flask's request and response objects, context locals, routing and header handling cost more CPU
than that work (about 150 µs of a 290 µs hit, profiled in process), and the benchmark compares the
pixel with a bare Flask app. Here the hit is read straight from the WSGI environ and answered with
a prepared header list; the answer is the one the view gave (same bytes, same cookie, same
events), which ``tests/adserver/tracking/test_pixel.py`` checks through the Flask test client, since the
layer wraps ``app.wsgi_app``. Other methods on ``/px.gif`` and every other path go to Flask.

The hit's Redis writes wait a few milliseconds to go out with other hits' in one call
(``ADSERVER_PIXEL_LINGER_MS``, ``tracker.linger``: what that costs on a crash is said there).

Whatever happens, the store page gets its 43-byte GIF: an exception is logged, never answered.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from urllib.parse import parse_qsl, unquote, unquote_to_bytes

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler used below
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import dump_cookie
from werkzeug.sansio.http import parse_cookie as parse_cookie_text

from adserver.metrics import PIXEL_ENDPOINT
from adserver.tracking.traffic import classify, device_of, invalid_fields
from tracker import consent
from tracker.events import MAX_RAW_LEN, Hit, Invalid, validate_hit
from tracker.identity import UID_COOKIE, UID_MAX_AGE, tracking_allowed

log = logging.getLogger(__name__)

PATH = "/px.gif"
# The classic 43-byte transparent 1x1 GIF (what nginx's empty_gif sends).
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
HIT_PARAMS = ("a", "e", "sku", "order", "value", "currency", "url", "ref")
_HEADERS = [("Content-Type", "image/gif"), ("Content-Length", str(len(GIF))),
            ("Cache-Control", "no-store, max-age=0")]
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.-]+\Z")
_MAX_COOKIE_SIZE = 4093  # werkzeug's default warning threshold, as ``Response.set_cookie`` uses


def cookie_options(settings) -> dict:
    """Attributes of every cookie we set: third-party (SameSite=None) needs Secure; plain-HTTP development gets Lax."""
    return {"path": "/", "domain": settings.cookie_domain, "secure": settings.cookie_secure, "httponly": True,
            "samesite": "None" if settings.cookie_secure else "Lax"}


_uid_cookie_tail: tuple[tuple, str] = ((), "")  # (second and options, what follows "uid=<value>")


def uid_set_cookie(value: str, settings) -> str:
    """The ``Set-Cookie`` value for the ``uid`` cookie, as ``Response.set_cookie`` would write it.

    Werkzeug formats the expiry date and re-checks every attribute on each call, about 4 % of a
    pixel hit's CPU. Its header is ``uid=<value>`` then attributes that depend only on the options
    and the current second, so that tail is made by Werkzeug once per second and reused; values
    are base64url with a dot (never quoted), anything else goes through Werkzeug.
    """
    global _uid_cookie_tail
    options = cookie_options(settings)
    if not _PLAIN_VALUE.match(value):
        return dump_cookie(UID_COOKIE, value, max_age=UID_MAX_AGE, max_size=_MAX_COOKIE_SIZE, **options)
    key = (int(time.time()), *options.values())
    cached = _uid_cookie_tail
    if cached[0] != key:
        head = f"{UID_COOKIE}=x"
        cached = _uid_cookie_tail = (key, dump_cookie(UID_COOKIE, "x", max_age=UID_MAX_AGE,
                                                      max_size=_MAX_COOKIE_SIZE, **options)[len(head):])
    return f"{UID_COOKIE}={value}{cached[1]}"


class _PixelHeaders(EnvironHeaders):
    """The request's headers read straight from the WSGI environ, for the pixel's few lookups.

    A hit asks for eight headers (privacy signals, speculative fetches, the user agent), most of them
    absent: Werkzeug's lookup rebuilds the environ key from the name each time and answers an absent
    header by raising and catching ``KeyError``, together a few per cent of a hit. Names are the
    code's own, so their environ keys are kept once made. Same answers, as a ``Headers``.
    """

    _keys: dict[str, str] = {}

    def get(self, key, default=None, type=None):  # noqa: A002 - Werkzeug's signature
        if type is not None or not isinstance(key, str):
            return super().get(key, default, type)
        name = self._keys.get(key)
        if name is None:
            name = key.upper().replace("-", "_")
            if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                name = f"HTTP_{name}"
            self._keys[key] = name
        return self.environ.get(name, default)


# A ``Cookie`` header holding one plain cookie (``uid=<value>``, what a returning visitor's browser
# sends us): read without Werkzeug's general parser, which is for quoting, escapes and repeats.
_ONE_PLAIN_COOKIE = re.compile(r"([A-Za-z0-9_]+)=([A-Za-z0-9_.-]*)\Z")


def request_cookies(environ: dict) -> Mapping[str, str]:
    """The request's cookies as Werkzeug reads them (first value of a name).

    Bytes that are not UTF-8 (another site's cookie on a shared domain, or a hostile client)
    become U+FFFD instead of failing the whole header, so the ``uid`` cookie beside them is still read.
    """
    header = environ.get("HTTP_COOKIE")
    if not header:
        return {}
    plain = _ONE_PLAIN_COOKIE.match(header)
    if plain is not None:
        return {plain[1]: plain[2]}
    return parse_cookie_text(header.encode("latin-1", "replace").decode("utf-8", "replace"))


def query_pairs(raw: str) -> list[tuple[str, str]]:
    """``parse_qsl(raw, keep_blank_values=True, errors="werkzeug.url_quote")``, as ``request.args`` reads a
    query, without ``parse_qsl``'s handling of bytes and options, and without unquoting what holds no
    ``%``: a hit's parameters are mostly plain (a third of its query parsing)."""
    pairs = []
    for piece in raw.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="werkzeug.url_quote")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="werkzeug.url_quote")
        pairs.append((name, value))
    return pairs


def check_hit(query: bytes, known_advertiser: Callable[[str], bool] | None) -> Hit | Invalid:
    """Validate a hit from its raw query string, as ``request.args`` would parse it.

    Besides ``validate_hit``'s checks it rejects what parsed parameters hide: bytes that are not
    UTF-8 and a parameter given twice (first value wins in the row it would have made).
    """
    raw = query.decode("utf-8", errors="replace")
    params: dict[str, str] = {}
    repeated: list[str] = []
    for name, value in query_pairs(raw):
        if name in params:
            if name in HIT_PARAMS and name not in repeated:
                repeated.append(name)
        else:
            params[name] = value
    result = validate_hit(params, raw, known_advertiser=known_advertiser)
    errors = []
    if b"%" in query or not query.isascii():  # else every byte is ASCII once unquoted
        try:
            unquote_to_bytes(query.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            errors.append("invalid_encoding: parameters must be percent-encoded UTF-8")
    if repeated:
        repeated.sort(key=HIT_PARAMS.index)
        errors.append(f"duplicate_parameter: {', '.join(repeated)} given more than once")
    if not errors:
        return result
    if isinstance(result, Invalid):
        result.errors[:0] = errors
        return result
    return Invalid(result.advertiser, result.event, errors, raw[:MAX_RAW_LEN])


class PixelEndpoint:
    """WSGI layer answering ``GET``/``HEAD /px.gif``; everything else goes to ``app``."""

    def __init__(self, flask_app, app: Callable) -> None:
        self.flask_app = flask_app
        self.app = app
        # The latency histogram's series, resolved once: a hit pays two clock reads and one observation.
        self.observe = flask_app.extensions["adserver_metrics"].timer(PIXEL_ENDPOINT, "2xx")

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if environ.get("PATH_INFO") != PATH or (method != "GET" and method != "HEAD"):
            return self.app(environ, start_response)
        start = perf_counter()
        start_response("200 OK", answer(self.flask_app, environ))
        self.observe(perf_counter() - start)
        return [GIF] if method == "GET" else [b""]


def answer(flask_app, environ: dict) -> list[tuple[str, str]]:
    """Record the hit in ``environ``; the response headers (with the visitor's cookie if any)."""
    headers = list(_HEADERS)
    try:
        cookie = _hit(flask_app, environ)
        if cookie:
            headers.append(("Set-Cookie", cookie))
    except Exception:  # noqa: BLE001 - the GIF goes out even if Redis is down
        log.exception("pixel hit not recorded")
    return headers


def hit_consent(query: str, vendor_id: int) -> consent.Verdict:
    """The IAB TCF permissions of a hit's ``gdpr``/``gdpr_consent`` (first values, as for every parameter).

    Stores outside the EU send neither: they pay one substring search.
    """
    if "gdpr" not in query:
        return consent.NOT_APPLICABLE
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote"):
        if name in ("gdpr", "gdpr_consent"):
            params.setdefault(name, value)
    return consent.verdict(params.get("gdpr"), params.get("gdpr_consent"), vendor_id)


def _hit(flask_app, environ: dict) -> str | None:
    """Record the hit; the ``Set-Cookie`` value to answer with, or None (tracking not allowed).

    Where GDPR applies (``gdpr=1``), a hit without consent to build a profile (``tracker.consent``)
    is treated like one from an opted-out visitor: no cookie set or refreshed, nothing recorded.
    """
    cookies = request_cookies(environ)
    request_headers = _PixelHeaders(environ)
    if not tracking_allowed(cookies, request_headers):
        return None
    svc = flask_app.extensions["adserver"]
    allowed = hit_consent(environ.get("QUERY_STRING", ""), svc.settings.tcf_vendor_id)
    if not allowed.profile:
        return None
    uid = svc.ids.verify(cookies.get(UID_COOKIE))
    first_visit = uid is None  # until the cookie comes back, the profile is short-lived (tracker.stream)
    if uid is None:
        uid, value = svc.ids.new()
    else:
        value = svc.ids.cookie_value(uid)  # re-set: lifetime counts from the last visit
    set_cookie = uid_set_cookie(value, svc.settings)
    result = check_hit(environ.get("QUERY_STRING", "").encode("latin-1"), svc.registry.known_advertiser)
    now = time.time()
    if isinstance(result, Invalid):
        svc.record({
            "ts": now, "advertiser": result.advertiser, "event": result.event, "uid": uid,
            "errors": result.errors, "raw": result.raw,
        }, counter="pixel_rejected", bad=True, linger=True)
        return set_cookie
    row = {
        "ts": now, "advertiser": result.advertiser, "event": result.event, "uid": uid,
        "skus": result.skus, "order_id": result.order_id, "value": result.value,
        "currency": result.currency, "url": result.url, "ref": result.ref,
        "device": device_of(request_headers.get("User-Agent", "")), "addressable": 1,
    }
    if allowed.applies:  # hits from outside the EU carry no consent column (the writer's default, 0)
        row["consent"] = allowed.profile_code
    invalid = invalid_fields(classify(request_headers, None))  # bots: no profile, no popularity (no flood count)
    row.update(invalid)
    svc.record(row, uid=None if invalid else uid, counter="pixel_invalid" if invalid else "pixel_accepted",
               first_visit=first_visit, linger=True)
    return set_cookie
