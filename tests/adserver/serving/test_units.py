"""The unit's rendering under concurrency: the template is compiled before the first ad, and a shape
seen for the first time is rendered once, however many threads need it at that moment."""

from __future__ import annotations

import threading
import time

from adserver.serving import units
from adserver.serving.formats import parse_size
from adserver.serving.units import Brand, render_unit

OPTOUT = "https://ads.example/optout"


def _items(count: int) -> list[dict]:
    return [{"sku": f"S{n}", "title": f"Product {n}", "price_text": "¥99.00", "image": f"https://cdn.example/{n}.jpg",
             "click_url": f"https://ads.example/c/{n}", "reason": "similar"} for n in range(count)]


def test_a_unit_renders_without_compiling_its_template(monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("the ad template was compiled while serving")

    monkeypatch.setattr(units._env, "cache", {})  # whatever earlier renders left in Jinja's own cache
    monkeypatch.setattr(units._env, "compile", no_compile)
    monkeypatch.setattr(units, "_SKELETONS", {})

    html = render_unit(_items(4), parse_size("300x250"), Brand("Compiled Early"), OPTOUT, "en")

    assert "Compiled Early" in html and "https://ads.example/c/3" in html


def test_threads_meeting_a_new_shape_at_once_render_it_once(monkeypatch):
    renders = []
    render = units._render

    def slow_render(*args, **kwargs):
        renders.append(threading.get_ident())
        time.sleep(0.05)  # wide enough for every thread to miss the skeleton while it renders
        return render(*args, **kwargs)

    monkeypatch.setattr(units, "_render", slow_render)
    monkeypatch.setattr(units, "_SKELETONS", {})
    fmt, brand, start = parse_size("300x250"), Brand("Eight Threads"), threading.Barrier(8)
    pages: list[str] = []

    def serve(n: int) -> None:
        start.wait()
        pages.append(render_unit(_items(4), fmt, brand, OPTOUT, "en"))

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(pages) == 8 and len(set(pages)) == 1
    assert len(renders) == 1
