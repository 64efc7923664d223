"""Screenshots of the native ad card in the demo microblog, on a phone-sized screen, for the docs.

    python -m scripts.screenshots [--out docs/img]

Serves the product with embedded stores in a temporary data directory (the demo loaded, as ``make
run`` does), lets a phone-sized Chromium look at a product in the demo store and then open the demo
microblog, where the native card shows that product, and saves ``native-card-phone.png`` (the card)
and ``native-feed-phone.png`` (the timeline around it). Needs Debian's ``chromium`` and the
``playwright`` package; ``fonts-noto-cjk`` for the Chinese text and ``fonts-noto-color-emoji`` for the
posts' emoji.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from werkzeug.serving import make_server

from scripts.benchlib.web import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
# A phone's Chrome: a headless browser's own user agent is (rightly) a bot to the ad server.
PHONE_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/131.0.0.0 Mobile Safari/537.36")
VIEWED = "D1002"  # the product the visitor looks at before opening the microblog


def _settings_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADSERVER_")}
    return {**env, "ADSERVER_DATA_DIR": str(data_dir), "ADSERVER_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "ADSERVER_DEMO": "1", "ADSERVER_CLICK_LIMIT_VISITOR": "1000"}


def _serve(env: dict[str, str], port: int):
    """The app in this process (chdb opens a data directory from one process only), on a thread."""
    from adserver import create_app
    from tracker.settings import load_settings

    app = create_app(load_settings(env), start_writer=False)  # the pictures need no event in ClickHouse
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return app, server, thread


def _shoot(base: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, viewport=PHONE, device_scale_factor=2,
            is_mobile=True, has_touch=True, user_agent=PHONE_CHROME, locale="zh-CN",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        page = context.new_page()
        with page.expect_response(lambda r: "/px.gif" in r.url and f"sku={VIEWED}" in r.url):
            page.goto(f"{base}/demo/store/p/{VIEWED}")
        page.goto(f"{base}/demo/feed")
        card = page.locator(".adserver-native")
        card.wait_for(timeout=20_000)
        page.wait_for_function("() => [...document.querySelectorAll('.adserver-native img')]"
                               ".every(i => i.complete && (i.naturalWidth > 0 || !i.getAttribute('src')))")
        page.wait_for_timeout(300)  # fonts settle
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "native-feed-phone.png"))
        card.scroll_into_view_if_needed()
        card.screenshot(path=str(out / "native-card-phone.png"))
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNG files go")
    args = parser.parse_args(argv)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="adserver-screenshots-") as tmp:
        env = _settings_env(Path(tmp) / "var", port)
        subprocess.run([sys.executable, "-m", "adserver", "demo", "--base-url", base], env=env, cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        app, server, thread = _serve(env, port)
        try:
            wait_http(f"{base}/healthz", 60)
            _shoot(base, args.out)
        finally:
            server.shutdown()
            thread.join(timeout=10)
            app.extensions["adserver"].close()
    for name in ("native-card-phone.png", "native-feed-phone.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
