"""Parsers of the settings' values, one per kind of ``ADSERVER_*`` variable (see :mod:`tracker.settings`).

A parser turns a variable's text (its default when unset or empty) into a value, or raises
:class:`SettingsError` with a message naming the variable. It gets the name actually set (an alias,
or the variable's own name), the variable (for its bounds) and the fields parsed so far (for
defaults that depend on earlier variables, such as the model directory under the data directory).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from tracker.key_strength import GENERATE, weakness

if TYPE_CHECKING:
    from tracker.settings import Var

Parser = Callable[[str, str, "Var", Mapping[str, Any]], Any]


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


@dataclass(frozen=True)
class ClickHouseURL:
    """Parsed ``clickhouse://user:password@host:port[,host:port...]/database?secure=1``.

    ``host`` and ``port`` name the first node, the one tried first; ``alt_hosts`` the others, tried
    in order when it does not answer (clickhouse-driver's ``alt_hosts``), so that a client outlives
    the loss of a node whose replica is up.
    """

    host: str
    port: int
    database: str
    user: str = "default"
    password: str = ""
    secure: bool = False
    alt_hosts: tuple[tuple[str, int], ...] = ()

    @property
    def hosts(self) -> tuple[tuple[str, int], ...]:
        """Every node the URL names, the first one first."""
        return ((self.host, self.port), *self.alt_hosts)

    def node(self, host: str, port: int) -> ClickHouseURL:
        """The same account and database on the one node ``host:port``, without failover (a client
        that must read that very node, such as the writer's check of each replica)."""
        return replace(self, host=host, port=port, alt_hosts=())


def _bounded(value: float, raw: str, name: str, var: Var) -> None:
    if var.minimum is not None and value < var.minimum:
        raise SettingsError(f"{name} must be at least {var.minimum:g}, got {raw!r}")
    if var.maximum is not None and value > var.maximum:
        raise SettingsError(f"{name} must be at most {var.maximum:g}, got {raw!r}")


def integer(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    _bounded(value, raw, name, var)
    return value


def stream_partitions(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> int:
    """A partition count that the stream key (read before it) can carry: partitions add their own hash
    tags, so the key of a partitioned stream may hold no braces."""
    from tracker.partitions import Partitions

    count = integer(raw, name, var, done)
    try:
        Partitions(done["stream_key"], count)
    except ValueError as exc:
        raise SettingsError(f"{name}={count} with ADSERVER_STREAM_KEY={done['stream_key']!r}: {exc}") from None
    return count


def number(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    _bounded(value, raw, name, var)
    return value


def boolean(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def matching(pattern: str, what: str) -> Parser:
    """A parser of text that must match ``pattern``; ``what`` describes it in the error."""
    regex = re.compile(pattern)

    def parse(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str:
        if not regex.fullmatch(raw):
            raise SettingsError(f"{name} must be {what}, got {raw!r}")
        return raw

    return parse


def optional_host(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str | None:
    if raw and not re.fullmatch(r"\.?[A-Za-z0-9.-]{1,253}", raw):
        raise SettingsError(f"{name} is not a host name: {raw!r}")
    return raw or None


def directory(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> Path:
    path = Path(raw).resolve()
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{name} must be a directory, got the file {raw!r}")
    return path


def model_dir(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> Path:
    return directory(raw, name, var, done) if raw else done["data_dir"] / "models"


@dataclass(frozen=True)
class RedisClusterURL:
    """Parsed ``redis+cluster://[user:password@]host:port,host:port,...``: seed nodes of a Redis Cluster."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    ssl: bool = False


REDIS_CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_NODE = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]{1,253})):(\d{1,5})")
_CLICKHOUSE_NODE = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]{1,253}))(?::(\d{1,5}))?")


def is_redis_cluster_url(url: str | None) -> bool:
    return bool(url) and url.partition("://")[0].lower() in REDIS_CLUSTER_SCHEMES


def parse_redis_cluster_url(raw: str, name: str = "ADSERVER_REDIS_URL") -> RedisClusterURL:
    """Parse and check the seed nodes of a Redis Cluster (any of them is enough to find the others).

    A cluster has only database 0 and the URL takes no options: anything else is refused rather than
    ignored, so that a URL copied from a single server's settings does not silently mean something else.
    """
    scheme, _, rest = raw.partition("://")
    userinfo, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise SettingsError(f"{name}: a Redis Cluster has only database 0, got {raw!r}")
    if not hosts:
        raise SettingsError(f"{name} has no host: {raw!r}")
    nodes = []
    for part in hosts.split(","):
        node = _NODE.fullmatch(part.strip())
        if not node or not 1 <= int(node.group(3)) <= 65535:
            raise SettingsError(f"{name} must list the cluster's nodes as host:port,host:port,..., got {part.strip()!r}")
        nodes.append((node.group(1) or node.group(2), int(node.group(3))))
    username, _, password = userinfo.partition(":")
    return RedisClusterURL(tuple(nodes), unquote(username) or None, unquote(password) or None,
                           ssl=scheme.lower() == "rediss+cluster")


def redis_url(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str | None:
    if not raw:
        return None
    if is_redis_cluster_url(raw):
        parse_redis_cluster_url(raw, name)
        return raw
    try:
        parts = urlparse(raw)
    except ValueError:  # an unclosed "[" of an IPv6 address
        raise SettingsError(f"{name} must look like redis://host:6379/0, got {raw!r}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"{name} must look like redis://host:6379/0, got {raw!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise SettingsError(f"{name} has no host: {raw!r}")
    return raw


def parse_clickhouse_url(raw: str, name: str = "ADSERVER_CLICKHOUSE_URL") -> ClickHouseURL:
    """Parse and check a ClickHouse URL; the database name must be a plain identifier.

    Several nodes may be listed, comma-separated (``clickhouse://h1:9000,h2:9000/db``): each needs a
    host and takes the first node's default port when it gives none. A node listed twice is refused,
    since it would only make a dead node cost two connection timeouts.
    """
    try:
        parts = urlparse(raw)
        userinfo, at, nodes = parts.netloc.rpartition("@")
        first, *others = nodes.split(",")
        if others:  # urlparse reads one host: give it the first, check the others here
            parts = urlparse(parts._replace(netloc=userinfo + at + first).geturl())
    except ValueError:  # an unclosed "[" of an IPv6 address
        raise SettingsError(f"{name} must look like clickhouse://host:9000/adserver, got {raw!r}") from None
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise SettingsError(f"{name} must look like clickhouse://host:9000/adserver, got {raw!r}")
    if not parts.hostname:
        raise SettingsError(f"{name} has no host: {raw!r}")
    database = parts.path.lstrip("/") or "adserver"
    if not _IDENT.match(database):
        raise SettingsError(f"{name}: database name {database!r} must be a plain identifier")
    query = parse_qs(parts.query)
    secure = parts.scheme == "clickhouses" or query.get("secure", ["0"])[0] in ("1", "true")
    default_port = 9440 if secure else 9000
    try:
        port = parts.port or default_port
    except ValueError:
        raise SettingsError(f"{name} has an invalid port: {raw!r}") from None
    alt_hosts = []
    for other in others:
        node = _CLICKHOUSE_NODE.fullmatch(other.strip())
        if not node or not 1 <= int(node.group(3) or default_port) <= 65535:
            raise SettingsError(f"{name} must list its nodes as host:port,host:port,..., got {other.strip()!r}")
        address = ((node.group(1) or node.group(2)).lower(), int(node.group(3) or default_port))
        if address in ((parts.hostname, port), *alt_hosts):
            raise SettingsError(f"{name} lists the node {other.strip()!r} twice")
        alt_hosts.append(address)
    return ClickHouseURL(
        host=parts.hostname,
        port=port,
        database=database,
        user=parts.username or "default",
        password=parts.password or "",
        secure=secure,
        alt_hosts=tuple(alt_hosts),
    )


def clickhouse_url(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> ClickHouseURL | None:
    return parse_clickhouse_url(raw, name) if raw else None


def clickhouse_cluster(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str | None:
    """The cluster's name in the servers' ``remote_servers``; it goes into ``ON CLUSTER`` and ``Distributed``."""
    if not raw:
        return None
    if not _IDENT.match(raw):
        raise SettingsError(f"{name} must be a plain identifier (the cluster's name in remote_servers), got {raw!r}")
    if done["clickhouse_url"] is None:
        raise SettingsError(f"{name} needs ADSERVER_CLICKHOUSE_URL naming a node of the cluster (the embedded "
                            "ClickHouse is a single server)")
    return raw


def database(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str:
    url = done["clickhouse_url"]
    if url and raw and raw != url.database:
        raise SettingsError(f"{name} is {raw!r} but ADSERVER_CLICKHOUSE_URL names the database {url.database!r}")
    database = url.database if url else (raw or "adserver")
    if not _IDENT.match(database):
        raise SettingsError(f"{name} must be a plain identifier, got {database!r}")
    return database


def secret_keys(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> tuple[str, ...]:
    """Keys from ``ADSERVER_SECRET_KEY`` (comma-separated: newest first, all verify).

    Embedded mode keeps a generated key in the data directory so cookies and click links survive a
    restart; server mode refuses to start without one, since every web and writer process must
    share it, and refuses a key that can be guessed (:mod:`tracker.key_strength`): whoever knows it
    signs sessions for any marketer. Every key of a rotation is checked, since each one verifies.
    """
    server = done["redis_url"] is not None and done["clickhouse_url"] is not None
    if raw:
        keys = tuple(k.strip() for k in raw.split(",") if k.strip())
        if any(len(k) < 16 for k in keys):
            raise SettingsError(f"{name}: every key must be at least 16 characters long")
        for number, key in enumerate(keys if server else (), start=1):
            reason = weakness(key)
            if reason:
                which = f"{name} (key {number} of {len(keys)})" if len(keys) > 1 else name
                raise SettingsError(f"{which} is {reason}: generate a key with: {GENERATE}")
        return keys
    if server:
        raise SettingsError(
            f"{name} is required when ADSERVER_REDIS_URL and ADSERVER_CLICKHOUSE_URL are set "
            f"(generate one with: {GENERATE})"
        )
    data_dir = done["data_dir"]
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    key = path.read_text().strip()
    if len(key) < 16:
        raise SettingsError(f"{path} holds a key shorter than 16 characters; delete it to regenerate")
    return (key,)


def demo(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> bool:
    """On by default only in embedded mode (``make run``): a server shows no demo unless asked."""
    if raw:
        return boolean(raw, name, var, done)
    return done["redis_url"] is None or done["clickhouse_url"] is None


def public_url(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str | None:
    url = raw.rstrip("/")
    if not url:
        return None
    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an http(s) URL, got {raw!r}")
    return url


def addresses(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> tuple:
    """``*`` or addresses; no networks, because gunicorn, which applies the same list to the
    scheme headers (``X-Forwarded-Proto``), refuses them."""
    if raw == "*":
        return ("*",)
    nets = []
    for part in raw.split(","):
        try:
            nets.append(ipaddress.ip_network(ipaddress.ip_address(part.strip())))
        except ValueError:
            raise SettingsError(f"{name} must be '*' or comma-separated IP addresses, got {part.strip()!r}") from None
    return tuple(nets)


def currency(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str:
    from tracker.events import CURRENCIES

    if raw not in CURRENCIES:
        raise SettingsError(f"{name} must be an ISO 4217 code like CNY or USD, got {raw!r}")
    return raw


CRASH_POINTS = ("", "before_insert", "between_inserts", "after_insert")


def crash_point(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str:
    if raw not in CRASH_POINTS:
        raise SettingsError(f"{name} must be one of {', '.join(p for p in CRASH_POINTS if p)}, got {raw!r}")
    return raw


_TCP_ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})")


def bind(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> tuple[str, ...]:
    if not raw:
        return (f"127.0.0.1:{done['port']}",)
    listed = tuple(part.strip() for part in raw.split(","))
    for address in listed:
        tcp = _TCP_ADDRESS.fullmatch(address)
        if (tcp and 1 <= int(tcp.group(1)) <= 65535) or re.fullmatch(r"unix:\S+|fd://\d+", address):
            continue
        raise SettingsError(f"{name} must be host:port, [IPv6 address]:port or unix:/path "
                            f"(comma-separated for several), got {address!r}")
    return listed


def workers(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> int:
    return integer(raw, name, var, done) if raw else os.cpu_count() or 1


def access_log(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> str | None:
    if raw and raw != "-" and not Path(raw).parent.is_dir():
        raise SettingsError(f"{name} must be '-' (standard output) or a file in an existing directory, got {raw!r}")
    return raw or None
