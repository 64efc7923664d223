"""Same-origin forms: a POST that changes a visitor's state must come from our own page.

Our ``uid`` cookie is ``SameSite=None`` (it has to reach us from the stores' pages), so a browser
sends it with any request any page makes, forms included. A state change is therefore accepted only
when both hold:

- the browser does not say the request comes from elsewhere: ``Sec-Fetch-Site``, if sent, is
  ``same-origin`` (or ``none``: typed or bookmarked), and ``Origin``, if sent, is our own. Browsers
  that send neither are covered by the second rule;
- the form carries the token of our page: an HMAC, under the secret key, of a random nonce kept in
  this browser's ``privacy_nonce`` cookie (``SameSite=Strict``: never sent with a request another
  site makes). Another page cannot read ours, so it cannot know the token, and a token copied from
  one browser is worthless in another.

The forms are plain HTML, so they work without JavaScript.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Request, Response

from tracker.settings import Settings
from tracker.signing import Signer, b64decode, b64encode

NONCE_COOKIE = "privacy_nonce"
NONCE_MAX_AGE = 86400  # a day to submit the page's form
NONCE_BYTES = 16
TOKEN_FIELD = "csrf_token"
_SAME_ORIGIN_FETCHES = ("same-origin", "none")

CROSS_SITE_MESSAGE = ("This request came from another site. Privacy choices are accepted only from this "
                      "service's own page on the same site: open /optout and use its buttons.")
BAD_TOKEN_MESSAGE = ("This form has expired or did not come from this service's opt-out page: reload /optout "
                     "and submit it again (cookies must be allowed for this site).")


class Refused(Exception):
    """The request is not a same-origin form submission; ``code`` and ``message`` say why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@lru_cache(maxsize=8)
def _signer(keys: tuple[str, ...]) -> Signer:
    return Signer(keys, "privacy-form")


def _valid_nonce(value: str | None) -> bool:
    if not value or len(value) > 64:
        return False
    try:
        return len(b64decode(value)) == NONCE_BYTES
    except ValueError:
        return False


def nonce(request: Request) -> tuple[str, bool]:
    """This browser's nonce, and whether it is new (then ``set_nonce`` must send it)."""
    value = request.cookies.get(NONCE_COOKIE)
    if _valid_nonce(value):
        return value, False
    return b64encode(secrets.token_bytes(NONCE_BYTES)), True


def set_nonce(response: Response, value: str, settings: Settings) -> None:
    response.set_cookie(NONCE_COOKIE, value, max_age=NONCE_MAX_AGE, path="/", domain=settings.cookie_domain,
                        secure=settings.cookie_secure, httponly=True, samesite="Strict")


def token(value: str, settings: Settings) -> str:
    """The token the page's forms carry for the nonce ``value``."""
    return b64encode(_signer(settings.secret_keys).mac(value.encode()))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _ours(origin: str, request: Request, settings: Settings) -> bool:
    """Our own origin: the request's host (over https, or the request's scheme) or the public URL's."""
    origin = origin.strip().lower()
    host = request.host.lower()
    if origin in (f"{request.scheme}://{host}", f"https://{host}"):
        return True
    return bool(settings.public_url) and origin == _origin(settings.public_url)


def check(request: Request, settings: Settings) -> None:
    """Raise ``Refused`` unless the request is a form submitted from our own page."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in _SAME_ORIGIN_FETCHES:
        raise Refused("cross_site", CROSS_SITE_MESSAGE)
    origin = request.headers.get("Origin")
    if origin is not None and not _ours(origin, request, settings):
        raise Refused("cross_site", CROSS_SITE_MESSAGE)
    value = request.cookies.get(NONCE_COOKIE)
    sent = request.form.get(TOKEN_FIELD, "")
    if not _valid_nonce(value) or not sent or len(sent) > 64:
        raise Refused("bad_token", BAD_TOKEN_MESSAGE)
    try:
        tag = b64decode(sent)
    except ValueError:
        raise Refused("bad_token", BAD_TOKEN_MESSAGE) from None
    if not _signer(settings.secret_keys).verify(value.encode(), tag):
        raise Refused("bad_token", BAD_TOKEN_MESSAGE)
