"""Sessions, CSRF tokens and the response headers of the reporting pages.

The session is Flask's signed cookie (``adserver_session``: HttpOnly, SameSite=Lax, Secure unless
``ADSERVER_COOKIE_SECURE=0``, 12 hours), signed with a key derived from ``ADSERVER_SECRET_KEY``
(older keys of a rotation still verify). It holds the user's e-mail, the login time, the user's
session generation at login and a random CSRF token that every POST form must send back.

The generation is checked against ClickHouse on every request (:func:`session_user`): signing out,
a new password or disabling the user writes a new one (``accounts.bump_session_generation``), so a
copied cookie stops working at once, in every web process and after restarts, instead of living out
its 12 hours. Signing out therefore ends every session of the user, in every browser.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta

from flask import Flask, Response, abort, g, request, session
from flask.sessions import SecureCookieSessionInterface

from adserver.console import accounts
from adserver.services import services

SESSION_LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
GENERATION_FIELD = "gen"
# The reporting pages: nothing but our own stylesheet and inline SVG; no framing, no scripts.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def _derive(key: str) -> str:
    return hmac.new(key.encode(), b"adserver reports session", hashlib.sha256).hexdigest()


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie session, without building its signer for a request that has no session
    cookie: Flask opens a session for every request, and the ads, clicks and pixels that never carry
    one spent ~4 % of an ad's CPU on a serializer nothing used. A request with the cookie is read as
    Flask reads it; saving is Flask's."""

    def open_session(self, app: Flask, request):  # noqa: ANN201 - Flask's signature
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def configure(app: Flask, secret_keys: tuple[str, ...], cookie_secure: bool) -> None:
    app.session_interface = CookieSessions()
    app.secret_key = _derive(secret_keys[0])
    app.config.update(
        SECRET_KEY_FALLBACKS=[_derive(k) for k in secret_keys[1:]],
        SESSION_COOKIE_NAME="adserver_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=cookie_secure,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )


def login(email: str) -> None:
    """Start a fresh session for ``email`` (a new CSRF token: nothing of the old session survives)."""
    session.clear()
    session.permanent = True
    session["user"] = email
    session["since"] = int(time.time())
    session[GENERATION_FIELD] = accounts.session_generation(services().ch, email)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def logout() -> None:
    """End this session and every other session of its user (a copy of this cookie included)."""
    user = session_user()
    if user is not None:
        accounts.bump_session_generation(services().ch, user)
    session.clear()


def session_user() -> str | None:
    """The signed-in user, if the session's generation is still the user's current one."""
    if "console_session_user" not in g:  # once per request: pages ask more than once
        g.console_session_user = _checked_user()
    return g.console_session_user


def _checked_user() -> str | None:
    user, generation = session.get("user"), session.get(GENERATION_FIELD)
    if not isinstance(user, str):
        return None
    if type(generation) is not int or generation != accounts.session_generation(services().ch, user):
        session.clear()  # revoked, or from before generations: the browser gets an empty cookie
        return None
    return user


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Abort with 400 unless the form carries this session's CSRF token."""
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="The form has expired or did not come from this site. Reload the page and try again.")


def secure_headers(response: Response) -> Response:
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
