"""Fetching a URL an advertiser gave us (a product image, a feed) without letting it reach anything else.

A feed names URLs and we fetch them from inside our network, so a hostile or careless feed could
point us at an internal service (``http://10.0.0.5/admin``, the cloud metadata address
``169.254.169.254``, Redis on loopback) and have us read it: server-side request forgery. So:

- only ``http``/``https`` URLs read as a browser reads them (:func:`~adserver.catalog.landing.url_problem`),
  on one of the advertiser's landing domains or a subdomain;
- the host name is resolved here and every address it resolves to must be public (no private,
  loopback, link-local, multicast, reserved or unspecified address, IPv4 or IPv6, IPv4-mapped
  and 6to4/NAT64-embedded included); the connection goes to the address that was checked, never
  through a second resolution, so a name cannot answer a public address to the check and a private
  one to the connection (DNS rebinding). HTTPS still verifies the certificate for the host name;
- every redirect hop is checked again, at most ``max_redirects`` of them;
- the body is read in chunks and refused as soon as it exceeds ``max_bytes``; the whole fetch
  (resolution, connection, headers, body, redirects) must end within ``timeout`` seconds, so a server
  that drips one byte a second cannot hold a worker; responses are asked for uncompressed, so the
  size read is the size kept.

``allow_loopback`` lets loopback addresses through, for tests and the demo only (the setting
``ADSERVER_FETCH_ALLOW_LOOPBACK``); every other refused range stays refused.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from adserver.catalog.landing import host_matches, url_host, url_problem
from tracker.errors import AdServerError

USER_AGENT = "adserver-fetch/1"
CHUNK = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Resolution has no timeout of its own in the standard library: it runs on these threads, waited for
# only until the fetch's deadline (a stuck lookup then finishes in the background, unused).
_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fetch-dns")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")


class FetchError(AdServerError):
    """A fetch refused or failed; ``code`` says why (``scheme``, ``url``, ``domain``, ``dns``,
    ``private_address``, ``connect``, ``tls``, ``timeout``, ``too_large``, ``http_status``, ``redirects``,
    ``protocol``)."""

    code = "fetch_error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code)


@dataclass(frozen=True)
class FetchResult:
    status: int  # 2xx, or 304 for a conditional request whose copy is still current
    body: bytes
    headers: dict[str, str]  # lower-case names
    url: str  # after redirects


def address_problem(address: str, allow_loopback: bool = False) -> str | None:
    """Why we must not connect to ``address`` (an IP address as text); None if it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address[:60]!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            inner = address_problem(str(embedded), allow_loopback)
            return f"{ip} carries {inner}" if inner else None
        if ip.teredo is not None:
            return f"{ip} is a Teredo tunnel address"
    if allow_loopback and (ip.is_loopback or (isinstance(ip, ipaddress.IPv4Address) and ip in _LOOPBACK_V4)):
        return None
    for flag, what in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, flag):
            return f"{ip} is a {what} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("timeout", "the fetch took too long")
    return left


def _resolve(host: str, port: int, deadline: float, allow_loopback: bool) -> str:
    """One checked address of ``host``; refused if any address it resolves to is not public (a name
    answering both kinds is not trusted with either)."""
    bare = host[1:-1] if host.startswith("[") else host
    try:
        ipaddress.ip_address(bare)
        addresses = [bare]
    except ValueError:
        future = _RESOLVER.submit(socket.getaddrinfo, bare, port, 0, socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=_remaining(deadline))
        except FutureTimeout:
            raise FetchError("timeout", f"resolving {host} took too long") from None
        except (OSError, UnicodeError) as exc:
            raise FetchError("dns", f"cannot resolve {host}: {exc}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise FetchError("dns", f"{host} has no address")
    for address in addresses:
        problem = address_problem(address, allow_loopback)
        if problem is not None:
            raise FetchError("private_address", f"{host} resolves to a refused address: {problem}")
    return addresses[0]


def _check_url(url: str, allowed_domains: Sequence[str]) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path_and_query)`` of an acceptable URL, or :class:`FetchError`."""
    if not isinstance(url, str):
        raise FetchError("url", "the URL must be text")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        raise FetchError("scheme", f"only http and https URLs are fetched, not {scheme[:20] or url[:40]!r}")
    problem = url_problem(url)
    if problem is not None:
        raise FetchError("url", f"unusable URL ({problem})")
    host = url_host(url)
    if not host_matches(host, tuple(allowed_domains)):
        raise FetchError("domain", f"host {host} is not one of the advertiser's landing domains "
                                   f"({', '.join(allowed_domains) or 'none declared'})")
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchError("url", "bad port") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, path


def _connection(scheme: str, host: str, port: int, address: str, timeout: float) -> http.client.HTTPConnection:
    """A connection that speaks to ``host`` (Host header, TLS name) at the checked ``address``."""
    name = host[1:-1] if host.startswith("[") else host
    if scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            name, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(name, port, timeout=timeout)

    def connect_checked(_address, timeout=timeout, source_address=None):
        return socket.create_connection((address, port), timeout, source_address)

    conn._create_connection = connect_checked  # http.client's own hook: no second resolution
    return conn


def _read_body(conn: http.client.HTTPConnection, response: http.client.HTTPResponse, max_bytes: int,
               deadline: float) -> bytes:
    length = response.getheader("Content-Length")
    if length and length.strip().isdigit() and int(length) > max_bytes:
        raise FetchError("too_large", f"the response declares {int(length):,} bytes, more than {max_bytes:,}")
    chunks, size = [], 0
    while True:
        if conn.sock is not None:
            conn.sock.settimeout(_remaining(deadline))
        chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"the response is larger than {max_bytes:,} bytes")
        chunks.append(chunk)
        _remaining(deadline)
    return b"".join(chunks)


def fetch(url: str, *, allowed_domains: Sequence[str], max_bytes: int, timeout: float,
          allow_loopback: bool = False, headers: Mapping[str, str] | None = None,
          max_redirects: int = 3) -> FetchResult:
    """GET ``url`` under the rules above; a 2xx or 304 answer, or :class:`FetchError`.

    ``headers`` are sent on every hop (``If-None-Match``, ``If-Modified-Since``, ``Accept``...); the
    host, the encoding and the connection are ours to set.
    """
    deadline = time.monotonic() + timeout
    sent = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for name, value in (headers or {}).items():
        if name.lower() not in ("host", "accept-encoding", "connection", "content-length", "transfer-encoding"):
            sent[name] = value
    sent["Accept-Encoding"] = "identity"
    sent["Connection"] = "close"
    current = url
    for hop in range(max_redirects + 1):
        scheme, host, port, path = _check_url(current, allowed_domains)
        address = _resolve(host, port, deadline, allow_loopback)
        conn = _connection(scheme, host, port, address, _remaining(deadline))
        try:
            try:
                conn.request("GET", path, headers=sent)
                if conn.sock is not None:
                    conn.sock.settimeout(_remaining(deadline))
                response = conn.getresponse()
            except FetchError:
                raise
            except TimeoutError:
                raise FetchError("timeout", f"{host} did not answer in time") from None
            except ssl.SSLError as exc:
                raise FetchError("tls", f"TLS with {host} failed: {exc}") from None
            except (http.client.HTTPException, ValueError) as exc:
                raise FetchError("protocol", f"{host} sent a malformed answer: {exc}") from None
            except OSError as exc:
                raise FetchError("connect", f"cannot connect to {host}: {exc}") from None
            status = response.status
            answer = {k.lower(): v for k, v in response.getheaders()}
            if status in REDIRECTS and answer.get("location"):
                if hop == max_redirects:
                    raise FetchError("redirects", f"more than {max_redirects} redirects")
                current = urljoin(current, answer["location"].strip())
                continue
            if status == 304 or 200 <= status < 300:
                try:
                    body = b"" if status == 304 else _read_body(conn, response, max_bytes, deadline)
                except TimeoutError:
                    raise FetchError("timeout", f"{host} sent the body too slowly") from None
                except (http.client.HTTPException, OSError) as exc:
                    raise FetchError("protocol", f"reading the answer of {host} failed: {exc}") from None
                return FetchResult(status, body, answer, current)
            raise FetchError("http_status", f"{host} answered HTTP {status}")
        finally:
            conn.close()
    raise FetchError("redirects", f"more than {max_redirects} redirects")  # pragma: no cover - loop returns
