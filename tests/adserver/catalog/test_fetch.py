"""Fetching advertisers' URLs: only their domains, only public addresses (after every redirect too),
within a size and a time budget."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from adserver.catalog.fetch import FetchError, address_problem, fetch
from adserver.catalog.landing import url_host

LOCAL = ("127.0.0.1",)


def get(url: str, domains=LOCAL, allow_loopback: bool = True, **options):
    options.setdefault("max_bytes", 100_000)
    options.setdefault("timeout", 5.0)
    return fetch(url, allowed_domains=domains, allow_loopback=allow_loopback, **options)


def refused(code: str, url: str, **options) -> FetchError:
    with pytest.raises(FetchError) as info:
        get(url, **options)
    assert info.value.code == code, str(info.value)
    return info.value


def test_fetches_a_body_with_lower_case_headers(local_server) -> None:
    local_server.body("/a.jpg", b"x" * 5000, "image/jpeg", headers={"ETag": '"v1"'})
    result = get(local_server.url("/a.jpg"))
    assert (result.status, result.body, result.url) == (200, b"x" * 5000, local_server.url("/a.jpg"))
    assert result.headers["content-type"] == "image/jpeg" and result.headers["etag"] == '"v1"'
    sent = local_server.requests[-1][1]
    assert sent["accept-encoding"] == "identity" and sent["user-agent"].startswith("adserver-fetch")


def test_a_304_is_returned_and_conditional_headers_are_sent(local_server) -> None:
    local_server.body("/a.jpg", b"", status=304)
    result = get(local_server.url("/a.jpg"), headers={"If-None-Match": '"v1"', "Host": "evil.test"})
    assert (result.status, result.body) == (304, b"")
    sent = local_server.requests[-1][1]
    assert sent["if-none-match"] == '"v1"' and sent["host"] == f"127.0.0.1:{local_server.port}"


def test_error_statuses_are_errors(local_server) -> None:
    refused("http_status", local_server.url("/missing.jpg"))


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.jpg", "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO",
                                 "javascript:alert(1)", "/relative.jpg", ""])
def test_only_http_and_https(url: str) -> None:
    refused("scheme", url)


@pytest.mark.parametrize("url", ["http://127.0.0.1@evil.test/a.jpg", "http://0x7f.0.0.1/a.jpg",
                                 "http://127.0.0.1/a b.jpg", "http://127.0.0.1:99999/a.jpg"])
def test_urls_a_browser_would_read_otherwise_are_refused(url: str) -> None:
    refused("url", url)


def test_only_the_advertisers_domains_and_their_subdomains(local_server) -> None:
    refused("domain", "http://evil.test/a.jpg", domains=("shop.example",))
    refused("domain", "http://shop.example.evil.test/a.jpg", domains=("shop.example",))
    refused("domain", "http://notshop.example/a.jpg", domains=("shop.example",))
    refused("domain", local_server.url("/a.jpg"), domains=())


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "192.168.1.1", "172.16.0.1",
                                  "0.0.0.0", "100.64.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255",
                                  "[::1]", "[::]", "[fe80::1]", "[fc00::1]", "[ff02::1]", "[::ffff:10.0.0.1]",
                                  "[::ffff:169.254.169.254]", "[2002:a00:1::]", "[64:ff9b::a00:1]"])
def test_private_addresses_are_refused_without_connecting(host: str) -> None:
    url = f"http://{host}/a.jpg"
    refused("private_address", url, domains=(url_host(url),), allow_loopback=False)


def test_a_name_resolving_to_loopback_is_refused() -> None:
    refused("private_address", "http://localhost/a.jpg", domains=("localhost",), allow_loopback=False)


def test_allow_loopback_opens_loopback_only() -> None:
    assert address_problem("127.0.0.1", allow_loopback=True) is None
    assert address_problem("::1", allow_loopback=True) is None
    assert address_problem("::ffff:127.0.0.1", allow_loopback=True) is None
    for address in ("10.0.0.1", "169.254.169.254", "192.168.0.1", "fe80::1", "0.0.0.0", "::"):
        assert address_problem(address, allow_loopback=True) is not None, address


def test_public_addresses_pass() -> None:
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"):
        assert address_problem(address) is None, address


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/admin",
                                    "http://[::ffff:10.0.0.1]/", "http://[fe80::1]/"])
def test_a_redirect_to_a_private_address_is_refused(local_server, target: str) -> None:
    local_server.redirect("/r.jpg", target)
    refused("private_address", local_server.url("/r.jpg"), domains=("127.0.0.1", url_host(target)))
    assert [path for path, _ in local_server.requests] == ["/r.jpg"]


def test_a_redirect_off_the_domains_or_to_another_scheme_is_refused(local_server) -> None:
    local_server.redirect("/r1.jpg", "https://evil.test/a.jpg")
    local_server.redirect("/r2.jpg", "file:///etc/passwd")
    refused("domain", local_server.url("/r1.jpg"))
    refused("scheme", local_server.url("/r2.jpg"))


def test_redirects_are_followed_and_counted(local_server) -> None:
    local_server.body("/final.jpg", b"ok")
    local_server.redirect("/r1", "/r2", 301)
    local_server.redirect("/r2", local_server.url("/final.jpg"), 307)
    result = get(local_server.url("/r1"))
    assert (result.body, result.url) == (b"ok", local_server.url("/final.jpg"))
    refused("redirects", local_server.url("/r1"), max_redirects=1)
    local_server.redirect("/loop", "/loop")
    refused("redirects", local_server.url("/loop"))


def test_too_large_declared_or_streamed(local_server) -> None:
    local_server.body("/big.jpg", b"x" * 2000)
    refused("too_large", local_server.url("/big.jpg"), max_bytes=1999)
    assert get(local_server.url("/big.jpg"), max_bytes=2000).body == b"x" * 2000

    def chunked(req) -> None:  # no Content-Length: the cap holds while reading
        req.send_response(200)
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        for _ in range(100):
            req.wfile.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
        req.wfile.write(b"0\r\n\r\n")

    local_server.routes["/stream.jpg"] = chunked
    refused("too_large", local_server.url("/stream.jpg"), max_bytes=50_000)
    assert len(get(local_server.url("/stream.jpg"), max_bytes=200_000).body) == 100 * 1024


def test_slow_servers_time_out(local_server) -> None:
    stop = threading.Event()

    def silent(req) -> None:
        stop.wait(10)

    def drip(req) -> None:  # a byte at a time, each well within a socket timeout: only the total budget ends it
        req.send_response(200)
        req.send_header("Content-Length", "100")
        req.end_headers()
        for _ in range(100):
            if stop.wait(0.1):
                return
            req.wfile.write(b"x")
            req.wfile.flush()

    local_server.routes["/silent.jpg"] = silent
    local_server.routes["/drip.jpg"] = drip
    try:
        for path in ("/silent.jpg", "/drip.jpg"):
            started = time.monotonic()
            refused("timeout", local_server.url(path), timeout=1.0)
            assert time.monotonic() - started < 5.0, path  # a budget, not a per-read timeout
    finally:
        stop.set()


def _resolve_as(monkeypatch, name: str, address: str, counter) -> None:
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == name:
            counter()
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_the_checked_address_is_the_one_connected_to(local_server, monkeypatch) -> None:
    """The name is resolved once per hop: the connection goes to the address that was checked, with the
    name in the Host header (no second lookup a rebinding DNS server could answer differently)."""
    lookups = []
    _resolve_as(monkeypatch, "shop.test", "127.0.0.1", lambda: lookups.append(1))
    local_server.body("/a.jpg", b"ok")
    url = f"http://shop.test:{local_server.port}/a.jpg"
    assert fetch(url, allowed_domains=("shop.test",), max_bytes=100, timeout=5, allow_loopback=True).body == b"ok"
    assert len(lookups) == 1
    assert local_server.requests[-1][1]["host"] == f"shop.test:{local_server.port}"
    with pytest.raises(FetchError) as info:
        fetch(url, allowed_domains=("shop.test",), max_bytes=100, timeout=5)
    assert info.value.code == "private_address"


def test_https_verifies_the_certificate_of_the_name(local_server, tmp_path) -> None:
    """TLS goes to the checked address but verifies the certificate for the URL's host: a self-signed one fails."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    local_server.httpd.socket = context.wrap_socket(local_server.httpd.socket, server_side=True)
    local_server.body("/a.jpg", b"ok")
    refused("tls", f"https://127.0.0.1:{local_server.port}/a.jpg")
