"""Landing pages: which URLs a feed or a campaign may hold, and the domains an advertiser declared.

An ad shows a store's name, products and logo, and its click leads to the product's link: that
link must be on a site the store controls. Operators declare each advertiser's landing domains
(``create-advertiser <id> --domain <host>``, like a verified site in a merchant centre); a link
matches a declared domain or any subdomain of it. Imports reject the other rows and clicks refuse
them, so a feed, a leaked API token or a compromised feed URL cannot send shoppers elsewhere under
the store's name.

URLs are read strictly, so that the host checked here is the host a browser goes to. Refused:
user info (``https://store.test@evil.test/`` leads to evil.test), backslashes (read as ``/`` by
browsers), percent-encoded or non-ASCII hosts (a browser decodes and maps them; internationalised
names are accepted in their ``xn--`` form), numbers a browser reads as IPv4 in another notation
(``0x7f.0.0.1``), spaces, quotes and control characters anywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from tracker.errors import AdServerError

MAX_URL = 2048
MAX_HOST = 253

_URL = re.compile(r"(https?)://([^/?#]*)(.*)\Z", re.IGNORECASE | re.DOTALL)
_UNSAFE = re.compile(r"[\x00-\x20\x7f<>\"'\\`]")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)\Z")


def normalize_host(host: str) -> str | None:
    """``host`` lowercased, without a trailing dot, if a browser reads it as exactly that; else None.

    Accepts host names of ASCII letters, digits, ``-`` and ``_`` (labels of at most 63), dotted IPv4
    and bracketed IPv6. A name whose last label is a number is an IPv4 address to a browser
    (``1.2.3``, ``0x7f.1``), so it must be one in the usual dotted form.
    """
    if not host or len(host) > MAX_HOST + 1:
        return None
    if host.startswith("["):
        if not host.endswith("]") or "%" in host:  # browsers take no zone id ("%25eth0") in a URL
            return None
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            return None
    host = host.lower()
    if not _NAME.match(host):
        return None
    host = host.rstrip(".")
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return None
    return host


def _split(authority: str) -> tuple[str, str]:
    """``host[:port]`` into host and port (an IPv6 host keeps its brackets)."""
    if authority.endswith("]") or ":" not in authority:
        return authority, ""
    host, _, port = authority.rpartition(":")
    return host, port


def url_problem(value: str) -> str | None:
    """Why ``value`` cannot be a link or an image of a feed or a campaign; None if it can."""
    if not value:
        return "missing"
    if len(value) > MAX_URL:
        return f"longer than {MAX_URL} characters"
    match = _URL.match(value)
    if not match:
        return "not an http(s) URL"
    if _UNSAFE.search(value):
        return "contains spaces, quotes, backslashes or control characters"
    authority = match.group(2)
    if "@" in authority:
        return "has user info (user@host): browsers go to the host after the '@', not to the one before it"
    host, port = _split(authority)
    if port and (not _PORT.match(port) or int(port) > 65535):
        return f"bad port {port[:20]!r}"
    if normalize_host(host) is None:
        return (f"host {host[:100]!r} is not a plain host name or IP address (internationalised names in their "
                "xn-- form)")
    return None


def url_host(value: str) -> str | None:
    """The normalised host of an acceptable URL (see :func:`url_problem`); None for any other value."""
    if not isinstance(value, str) or url_problem(value) is not None:
        return None
    return normalize_host(_split(_URL.match(value).group(2))[0])


def check_domain(value: str) -> str:
    """A declared landing domain, normalised (``Shop.Example.`` is ``shop.example``), or :class:`AdServerError`.

    A host name of at least two labels (or ``localhost``), or an IP address; no scheme, port, path or
    wildcard: every subdomain of a declared name is included anyway.
    """
    text = (value or "").strip() if isinstance(value, str) else ""
    host = normalize_host(text)
    if host is None:
        try:  # an IPv6 address may be declared without brackets
            host = f"[{ipaddress.IPv6Address(text).compressed}]"
        except ValueError:
            pass
    named = host is not None and not host.startswith("[") and not _is_ipv4(host)
    if host is None or (named and "." not in host and host != "localhost"):
        raise AdServerError(
            f"landing domain {text[:100]!r} must be a host name such as shop.example (its subdomains are "
            "included), or an IP address: no scheme, port, path or wildcard; internationalised names in their "
            "xn-- form", "invalid_domain")
    return host


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def host_matches(host: str, domains: Iterable[str]) -> bool:
    """True if ``host`` is one of ``domains`` or a subdomain of a declared name (addresses match exactly)."""
    for domain in domains:
        if host == domain:
            return True
        if not domain.startswith("[") and not _is_ipv4(domain) and host.endswith("." + domain):
            return True
    return False


def landing_problem(link: str, domains: Iterable[str]) -> str | None:
    """Why a click must not lead to ``link`` for an advertiser with these landing domains; None if it may."""
    problem = url_problem(link)
    if problem is not None:
        return f"unusable link ({problem})"
    domains = tuple(domains)
    host = url_host(link)
    if not domains:
        return "the advertiser has declared no landing domain"
    if not host_matches(host, domains):
        return f"host {host} is not one of the advertiser's landing domains ({', '.join(domains)})"
    return None
