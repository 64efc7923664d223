"""The deploy files that bound what traffic can make the servers hold, loaded by the real programs:
Redis' memory limit and eviction policy (``deploy/redis/redis.conf``), which must evict expiring keys
and never an event the writer has not stored, and nginx's per-address request rates
(``deploy/nginx/adserver.conf``) on every public endpoint."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.adserver.test_redis_faults import _free_port
from tests.waiting import poll
from tracker.stream import EventStream

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
REDIS_CONF = DEPLOY / "redis" / "redis.conf"
NGINX_CONF = DEPLOY / "nginx" / "adserver.conf"
# Every public endpoint a visitor, a store or an attacker can call, and the zone that must limit it.
PUBLIC = {
    "/px.gif": "pixel", "/px/viewable": "pixel", "/px/debug": "pixel", "/ad": "ad", "/ad.json": "ad",
    "/c/some-token": "click", "/ad/hide": "hide", "/privacy/forget": "forget", "/optout": "forget", "/reports/login": "login",
    "/api/v1/feeds/demo": "upload",
}


@pytest.fixture
def conf_redis(tmp_path):
    """A redis-server started with the deploy file (only its port, address and folder overridden)."""
    port = _free_port()
    proc = subprocess.Popen(["redis-server", str(REDIS_CONF), "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(tmp_path), "--daemonize", "no", "--save", ""],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_timeout=5)
    answered = poll(lambda: proc.poll() is not None or client.ping(), 10, tolerate=(redis.ConnectionError,),
                    interval=0.02)
    if not answered or proc.poll() is not None:
        proc.kill()
        raise AssertionError(f"redis-server refused {REDIS_CONF}: {proc.stdout.read().decode()}")
    yield client
    client.close()
    proc.kill()
    proc.wait()


def test_redis_conf_loads_with_a_memory_limit_that_spares_the_stream(conf_redis):
    config = conf_redis.config_get("*")
    assert int(config["maxmemory"]) > 0
    assert config["maxmemory-policy"] == "volatile-lru"
    assert config["appendonly"] == "yes"


def test_under_memory_pressure_profiles_are_evicted_and_the_stream_never(conf_redis):
    """Fill a small Redis with pixel hits: profiles (which expire) make room until only the stream is
    left, then writes fail (the app spools them) rather than losing an event not yet written."""
    conf_redis.config_set("maxmemory", int(conf_redis.info("memory")["used_memory"]) + 2 * 1024 * 1024)
    stream = EventStream(conf_redis, "events")
    recorded = 0
    with pytest.raises(redis.ResponseError, match="OOM|maxmemory"):
        while recorded < 100_000:
            stream.record({"ts": time.time(), "advertiser": "shop", "event": "view_item", "skus": ["P1", "P2"],
                           "url": "https://shop.example/" + "p" * 200}, uid=f"visitor-{recorded}",
                          first_visit=recorded % 2 == 0)
            recorded += 1
    assert recorded > 1000
    assert conf_redis.xlen("events") == recorded  # every accepted event is still there
    assert conf_redis.info("stats")["evicted_keys"] > 0
    assert conf_redis.dbsize() < 2 * recorded  # profiles went, to make room


def _locations(text: str) -> list[tuple[str, str, str]]:
    """``(modifier, pattern, body)`` of each ``location`` block (the file nests no blocks in them)."""
    return re.findall(r"location\s+(=|~\*?|\^~)?\s*(\S+)\s*\{([^}]*)\}", text)


def _location_for(locations: list[tuple[str, str, str]], path: str) -> tuple[str, str, str]:
    """The block nginx picks for ``path``: exact match, else the longest prefix if ``^~``, else the
    first matching regular expression, else the longest prefix."""
    for loc in locations:
        if loc[0] == "=" and loc[1] == path:
            return loc
    prefixes = [loc for loc in locations if loc[0] in ("", "^~") and path.startswith(loc[1])]
    longest = max(prefixes, key=lambda loc: len(loc[1]), default=None)
    if longest is not None and longest[0] == "^~":
        return longest
    for loc in locations:
        if loc[0].startswith("~") and re.search(loc[1], path, re.IGNORECASE if loc[0] == "~*" else 0):
            return loc
    assert longest is not None, path
    return longest


def test_every_public_endpoint_has_its_own_rate_limit():
    text = NGINX_CONF.read_text()
    zones = dict(re.findall(r"limit_req_zone\s+\S+\s+zone=(\w+):\w+\s+rate=(\d+r/[sm])", text))
    rates = {}
    for path, kind in PUBLIC.items():
        body = _location_for(_locations(text), path)[2]
        used = re.findall(r"limit_req\s+zone=(\w+)", body)
        assert used == [f"adserver_{kind}"], (path, used)
        assert used[0] in zones, used
        rates[kind] = zones[used[0]]
    per_second = {kind: int(r[:-3]) / (1 if r.endswith("/s") else 60) for kind, r in rates.items()}
    assert per_second["login"] < per_second["click"] < per_second["ad"] < per_second["pixel"]
    assert per_second["forget"] < per_second["click"] and per_second["upload"] < per_second["click"]
    assert per_second["hide"] < per_second["click"]


def test_nginx_accepts_the_file(tmp_path):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    openssl = shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip("nginx or openssl is not installed (apt-get install nginx openssl)")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ads.test",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    site = NGINX_CONF.read_text()
    site = site.replace("/etc/ssl/adserver/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/ssl/adserver/privkey.pem", str(tmp_path / "key.pem"))
    (tmp_path / "adserver.conf").write_text(site)
    temp = {name: tmp_path / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    main = f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log {tmp_path}/access.log;
    {" ".join(f"{name}_temp_path {path};" for name, path in temp.items())}
    include {tmp_path}/adserver.conf;
}}
"""
    (tmp_path / "nginx.conf").write_text(main)
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
