"""The pixel's WSGI layer (``adserver.tracking.pixel``) answers what the Flask view answers, and only the pixel."""

from __future__ import annotations

import re

import pytest
from werkzeug.test import Client

from adserver.tracking.pixel import GIF, PixelEndpoint, check_hit
from tests.conftest import drain
from tracker.events import Hit, Invalid


def _unwrapped(app) -> Client:
    """A client for the app without the layer: the Flask view answers ``/px.gif``."""
    assert isinstance(app.wsgi_app, PixelEndpoint)
    return Client(app.wsgi_app.app, use_cookies=False)


def _normalised(response) -> list[tuple[str, str]]:
    """Headers with the cookie's expiry date left out (it is the current second)."""
    return sorted((k, re.sub(r"Expires=[^;]+; ", "", v)) for k, v in response.headers.items())


def test_layer_and_flask_view_answer_the_same(app, demo_loaded, client, redis_client, settings):
    first = client.get("/px.gif?a=demo&e=view_item&sku=D1001")
    cookie = first.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    fast = Client(app, use_cookies=False).get("/px.gif?a=demo&e=view_item&sku=D1002", headers={"Cookie": f"uid={cookie}"})
    view = _unwrapped(app).get("/px.gif?a=demo&e=view_item&sku=D1003", headers={"Cookie": f"uid={cookie}"})
    assert fast.status_code == view.status_code == 200
    assert fast.get_data() == view.get_data() == GIF
    assert _normalised(fast) == _normalised(view)
    assert fast.headers["Set-Cookie"].startswith(f"uid={cookie};")  # the visitor keeps their id
    assert redis_client.xlen(settings.stream_key) == 3


def test_head_gets_the_headers_without_a_body(client, demo_loaded):
    response = client.head("/px.gif?a=demo&e=view_home")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.get_data() == b""
    assert "uid=" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_go_to_flask(client, method):
    assert getattr(client, method)("/px.gif?a=demo&e=view_home").status_code == 405


@pytest.mark.parametrize("path", ["/px.gif/", "/px.gifx", "/PX.GIF", "/px.gif/../"])
def test_only_the_exact_path_is_taken(client, path):
    assert client.get(path).status_code in (404, 308)


def test_an_error_inside_still_answers_the_gif(app, demo_loaded, monkeypatch, caplog):
    svc = app.extensions["adserver"]

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(svc, "record", broken)
    response = app.test_client().get("/px.gif?a=demo&e=view_home")
    assert response.status_code == 200 and response.get_data() == GIF
    assert "pixel hit not recorded" in caplog.text


def test_check_hit_parses_like_request_args():
    hit = check_hit(b"a=demo&e=view_item&sku=D1%2CD2&url=https%3A%2F%2Fs.example%2Fp%3Fx%3D1%262&cb=1&cb=2", None)
    assert isinstance(hit, Hit)
    assert hit.skus == ["D1", "D2"]
    assert hit.url == "https://s.example/p?x=1&2"
    bad = check_hit(b"a=demo&e=view_item&sku=%ff&sku=D2&a=x", None)
    assert isinstance(bad, Invalid)
    assert bad.errors[0].startswith("invalid_encoding")
    assert bad.errors[1] == "duplicate_parameter: a, sku given more than once"


def test_hits_through_the_layer_are_stored(client, demo_loaded, writer, ch):
    for sku in ("D1001", "D1002"):
        assert client.get(f"/px.gif?a=demo&e=view_item&sku={sku}").status_code == 200
    drain(writer)
    assert sorted(ch.execute("SELECT sku FROM events WHERE event = 'view_item'")) == [("D1001",), ("D1002",)]
