"""One ClickHouse interface, two backends: a real server (clickhouse-driver) or chdb in-process.

Both run exactly the same SQL. Values are never formatted into SQL by hand: queries carry
``%(name)s`` placeholders and values travel separately. The native driver substitutes them with
its own escaping; the chdb backend applies that same escaping function, so behaviour matches.
Inserts go as data, not SQL: columnar blocks over the native protocol, ``JSONEachRow`` for chdb.

ClickHouse 18.16 (Debian's server) and current ClickHouse (chdb) must both accept every statement.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from tracker.errors import StoreError, StoreUnavailable
from tracker.settings import ClickHouseURL

log = logging.getLogger(__name__)

Row = tuple


class ClickHouse(Protocol):
    """What the rest of the project needs from ClickHouse."""

    database: str
    cluster: str | None  # the cluster's name in the servers' remote_servers (cluster mode), else None

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]: ...

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int: ...

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int: ...

    def ping(self) -> None: ...

    def replicas(self) -> list[ClickHouse]: ...

    def close(self) -> None: ...


class _UTCContext:
    """The escaping context clickhouse-driver expects; datetimes are always UTC here."""

    class server_info:  # noqa: N801 - mirrors the driver's attribute name
        @staticmethod
        def get_timezone() -> str:
            return "UTC"


def substitute(sql: str, params: dict[str, Any] | None) -> str:
    """Fill ``%(name)s`` placeholders using clickhouse-driver's own value escaping."""
    if not params:
        return sql
    from clickhouse_driver.util.escape import escape_params

    return sql % escape_params(params, _UTCContext())


def _check_identifier(name: str) -> str:
    if not name.replace("_", "").isalnum() or name[0].isdigit():
        raise StoreError(f"not a plain identifier: {name!r}", code="bad_identifier")
    return name


# Cluster mode: a Distributed insert returns once each shard has stored its rows (not while they wait
# in this node's send queue); reads and inserts go to the first healthy replica of each shard in the
# order remote_servers lists them, so a client reads back through a Distributed table what it just
# wrote there (the next replica serves while the first is down); and a subquery over a Distributed
# table inside a query over one (attribution's IN and JOIN by visitor) reads each shard's local table,
# which is exact because every table with visitors' rows is sharded by visitor: a visitor's events,
# touches and orders sit on one shard (tracker/schema/cluster.py).
CLUSTER_SETTINGS = {"insert_distributed_sync": 1, "load_balancing": "in_order", "distributed_product_mode": "local"}
# Server errors about a node the server asked in turn (a shard's replica of a ``Distributed`` query that
# died or reset mid-query): SOCKET_TIMEOUT, NETWORK_ERROR, ALL_CONNECTION_TRIES_FAILED. Like a network
# error of our own connection they are retried, and reported as unavailable, not as a bad query.
REMOTE_NETWORK_CODES = frozenset({209, 210, 279})


class DriverClickHouse:
    """A ClickHouse server over the native protocol, with timeouts and retries on network errors.

    Only connection-level failures are retried (the statement may not have reached the server);
    a server-side error (bad SQL, unknown table) is raised at once as :class:`StoreError`.

    With ``cluster`` (cluster mode) the session has ``CLUSTER_SETTINGS``. The writer relies on
    synchronous inserts: an insert that returned is stored, and one that failed may have reached
    some shards, which its recovery check finds on the replicas (tracker/writer/batch.py).

    A URL naming several nodes gives the driver the others as ``alt_hosts``: a connection goes to the
    first node that accepts it, in the URL's order, and stays there until that node fails. Any node
    of a cluster serves any statement (inserts and reads go through ``Distributed`` tables), so a
    stopped node costs a connection attempt, not the service.
    """

    def __init__(self, url: ClickHouseURL, connect_timeout: float, timeout: float, retries: int = 2,
                 cluster: str | None = None) -> None:
        from clickhouse_driver import Client

        self.database = url.database
        self.cluster = cluster
        self.shard = 0  # on a client from ``replicas()``: the shard its node holds (system.clusters' shard_num)
        self._url = url
        self._retries = retries
        self._lock = threading.Lock()
        self._client = Client(
            host=url.host,
            port=url.port,
            alt_hosts=_alt_hosts(url),
            database=url.database,
            user=url.user,
            password=url.password,
            secure=url.secure,
            connect_timeout=connect_timeout,
            send_receive_timeout=timeout,
            sync_request_timeout=timeout,
            settings={"strings_as_bytes": False, **(CLUSTER_SETTINGS if cluster else {})},
        )
        self._server_client = None

    def _call(self, fn, *args, retries: int | None = None, **kwargs):
        from clickhouse_driver import errors as ch_errors

        network = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, OSError)
        retries = self._retries if retries is None else retries
        attempt = 0
        while True:
            try:
                with self._lock:  # one driver connection is not safe to share between threads
                    return fn(*args, **kwargs)
            except network as exc:
                self._client.disconnect()
                attempt += 1
                if attempt > retries:
                    raise StoreUnavailable(f"ClickHouse at {_described(self._url)}: {exc}") from exc
                time.sleep(0.1 * 2**attempt)
            except ch_errors.Error as exc:
                if getattr(exc, "code", None) in REMOTE_NETWORK_CODES:
                    attempt += 1
                    if attempt > retries:
                        raise StoreUnavailable(f"ClickHouse at {_described(self._url)}: "
                                               f"{' '.join(str(exc).splitlines()[:2])}") from exc
                    time.sleep(0.1 * 2**attempt)
                    continue
                if getattr(exc, "code", None) == 81:  # UNKNOWN_DATABASE
                    raise StoreError(str(exc).splitlines()[0], code="unknown_database") from exc
                # A server's exception reads "Code: N." then the message: keep both, not the stack trace.
                message = " ".join(str(exc).splitlines()[:2])
                raise StoreError(message, code=f"clickhouse_{getattr(exc, 'code', 0)}") from exc

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        return self._call(self._client.execute, sql, params or None)

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        rows = [tuple(r) for r in rows]
        if not rows:
            return 0
        sql = f"INSERT INTO {_check_identifier(table)} ({', '.join(map(_check_identifier, columns))}) VALUES"
        self._call(self._client.execute, sql, rows)
        return len(rows)

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        """Insert one block given as columns (``data[i]`` holds the values of ``columns[i]``).

        The native protocol is columnar: handing the driver columns skips its row-to-column
        transposition and per-row checks, several times cheaper than ``insert`` for big batches.
        DateTime columns may hold unix seconds (ints), which the driver sends as they are.
        A network error is not retried here: the block may have reached the server, and only the
        caller can tell whether inserting it again would store it twice (the writer checks).
        """
        n = len(data[0]) if data else 0
        if not n:
            return 0
        sql = f"INSERT INTO {_check_identifier(table)} ({', '.join(map(_check_identifier, columns))}) VALUES"
        self._call(self._client.execute, sql, data, columnar=True, retries=0)
        return n

    def ping(self) -> None:
        self.execute("SELECT 1")

    def create_database(self) -> None:
        """Create the configured database; needs a connection that does not select it yet."""
        from clickhouse_driver import Client

        url = self._url
        client = Client(
            host=url.host, port=url.port, alt_hosts=_alt_hosts(url), user=url.user, password=url.password,
            secure=url.secure,
            connect_timeout=self._client.connection.connect_timeout,
            send_receive_timeout=self._client.connection.send_receive_timeout,
        )
        try:
            sql = "CREATE DATABASE IF NOT EXISTS " + _check_identifier(self.database)
            if self.cluster:
                sql += " ON CLUSTER " + _check_identifier(self.cluster)
            client.execute(sql)
        except Exception as exc:  # noqa: BLE001 - mapped to the project's error
            raise StoreUnavailable(f"ClickHouse at {_described(url)}: {exc}") from exc
        finally:
            client.disconnect()

    def replicas(self) -> list[DriverClickHouse]:
        """A client for each replica of each shard of the cluster, as ``system.clusters`` lists them
        (same account and database, no failover: each reads its own node; ``shard`` says which shard it
        holds); the caller closes them."""
        if not self.cluster:
            return []
        rows = self.execute("SELECT shard_num, host_name, port FROM system.clusters WHERE cluster = %(cluster)s "
                            "ORDER BY shard_num, replica_num", {"cluster": self.cluster})
        connection = self._client.connection
        nodes = []
        for shard, host, port in rows:
            node = DriverClickHouse(self._url.node(host, port), connect_timeout=connection.connect_timeout,
                                    timeout=connection.send_receive_timeout, retries=self._retries)
            node.shard = int(shard)
            nodes.append(node)
        return nodes

    def describe(self) -> str:
        """The nodes this client talks to, as ``host:port,...`` (for messages)."""
        return _described(self._url)

    def close(self) -> None:
        self._client.disconnect()


def _alt_hosts(url: ClickHouseURL) -> str | None:
    """The URL's other nodes as clickhouse-driver reads them (``host:port,[v6]:port``), or None."""
    return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in url.alt_hosts) or None


def _described(url: ClickHouseURL) -> str:
    return ",".join(f"{h}:{p}" for h, p in url.hosts)


def _convert(value: Any, type_name: str) -> Any:
    """Turn a JSONCompact value into the Python type clickhouse-driver would return."""
    base = type_name
    while base.startswith(("Nullable(", "LowCardinality(")):
        base = base[base.index("(") + 1 : -1]
    if value is None:
        return None
    if base.startswith("DateTime"):
        return datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S")
    if base == "Date":
        return date.fromisoformat(value)
    if base.startswith(("UInt", "Int")) and isinstance(value, str):
        return int(value)
    if base.startswith("Float") and isinstance(value, str):
        return float(value)
    if base.startswith("Decimal") and isinstance(value, str):
        return float(value)
    if base.startswith("Array(") and isinstance(value, list):
        inner = base[6:-1]
        return [_convert(v, inner) for v in value]
    if base.startswith("Tuple(") and isinstance(value, list):
        return tuple(value)
    return value


class ChdbClickHouse:
    """ClickHouse's engine in this process (chdb), for the zero-setup embedded mode.

    chdb lets one process open a data path; the embedded product is therefore a single process.
    Calls are serialised with a lock: the session is shared by web threads and the writer thread.
    """

    def __init__(self, path: Path, database: str) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.database = _check_identifier(database)
        self.cluster = None  # one embedded server
        self._lock = threading.Lock()
        try:
            self._session = session.Session(str(path))
        except Exception as exc:  # noqa: BLE001 - chdb raises plain RuntimeError here
            raise StoreError(
                f"cannot open the embedded ClickHouse at {path} ({exc}); is another process using it?",
                code="chdb_locked",
            ) from exc
        self._query("CREATE DATABASE IF NOT EXISTS " + self.database)
        self._query("USE " + self.database)

    def _query(self, sql: str, fmt: str = "CSV"):
        with self._lock:
            try:
                return self._session.query(sql, fmt)
            except Exception as exc:  # noqa: BLE001 - chdb raises several unrelated classes
                raise StoreError(str(exc).splitlines()[0], code="clickhouse_error") from exc

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        result = self._query(substitute(sql, params), "JSONCompact")
        raw = result.bytes() if hasattr(result, "bytes") else bytes(result)
        if not raw.strip():
            return []
        doc = json.loads(raw)
        types = [m["type"] for m in doc.get("meta", [])]
        return [tuple(_convert(v, t) for v, t in zip(row, types)) for row in doc.get("data", [])]

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        columns = [_check_identifier(c) for c in columns]
        lines = [json.dumps(dict(zip(columns, map(_jsonable, row))), ensure_ascii=False) for row in rows]
        if not lines:
            return 0
        head = f"INSERT INTO {_check_identifier(table)} ({', '.join(columns)}) FORMAT JSONEachRow\n"
        self._query(head + "\n".join(lines))
        return len(lines)

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        """Columnar insert, same contract as the server backend's (unix seconds accepted for DateTime)."""
        return self.insert(table, columns, zip(*data))

    def ping(self) -> None:
        self.execute("SELECT 1")

    def create_database(self) -> None:
        """Already done when the session opened."""

    def replicas(self) -> list[ClickHouse]:
        """No cluster: no replicas."""
        return []

    def close(self) -> None:
        with self._lock:
            try:
                self._session.close()
            except Exception:  # noqa: BLE001 - closing twice is harmless
                pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value
