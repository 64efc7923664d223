"""Marketer accounts: users with scrypt password hashes, their advertisers, and login throttling.

Passwords are hashed with scrypt (``hashlib.scrypt``, RFC 7914) and a random 16-byte salt:
N = 2**15, r = 8, p = 1, 32-byte key, about 32 MiB and 50-100 ms per hash on a server core, which
makes guessing expensive while a login stays quick. The parameters are stored with each hash
(``scrypt$15$8$1$<salt>$<key>``), so they can be raised later without breaking existing hashes.

Users and memberships live in ClickHouse (``ReplacingMergeTree``: the newest version of a row wins)
and are read on every request, so a removed membership or a disabled user takes effect at once.
Failed logins are counted in Redis per account and per client address (see :class:`LoginThrottle`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError
from tracker.events import ADVERTISER_RE
from tracker.schema import MEMBERSHIPS_COLUMNS, USERS_COLUMNS

SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 15, 8, 1, 32
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
EMAIL_RE = re.compile(r"^[^@\s\"'<>\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+\Z")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int, dklen: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * n * r * p)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN)
    return f"scrypt${SCRYPT_LOG_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored hash; malformed hashes never match."""
    try:
        scheme, log_n, r, p, salt, key = stored.split("$")
        log_n, r, p = int(log_n), int(r), int(p)
        if scheme != "scrypt" or not (10 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        expected = _unb64(key)
        actual = _scrypt(password[:MAX_PASSWORD], _unb64(salt), log_n, r, p, len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = None


def _dummy_check(password: str) -> None:
    """Spend the time of a real check, so an unknown e-mail cannot be told apart by timing."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    verify_password(password, _DUMMY_HASH)


def normalize_email(email: str) -> str:
    email = (email or "").strip()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise AdServerError(f"not an e-mail address: {email[:100]!r}", "invalid_email")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}".lower()


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AdServerError(f"password too short: at least {MIN_PASSWORD} characters", "weak_password")
    if len(password) > MAX_PASSWORD:
        raise AdServerError(f"password too long: at most {MAX_PASSWORD} characters", "weak_password")
    if password.strip() == "" or len(set(password)) < 4:
        raise AdServerError("password too simple: use at least 4 different characters", "weak_password")
    return password


@dataclass(frozen=True)
class User:
    email: str
    password_hash: str
    disabled: bool = False


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def save_user(ch: ClickHouse, email: str, password: str, advertisers: list[str]) -> User:
    """Create the user (or set a new password) and add the memberships; returns the user."""
    email = normalize_email(email)
    check_password(password)
    bad = [a for a in advertisers if not ADVERTISER_RE.match(a)]
    if bad:
        raise AdServerError(f"invalid advertiser ids: {bad}", "invalid_advertiser")
    user = User(email, hash_password(password))
    ch.insert("users", USERS_COLUMNS, [(user.email, user.password_hash, 0, time.time_ns(), _now())])
    set_memberships(ch, email, advertisers)
    return user


def set_memberships(ch: ClickHouse, email: str, advertisers: list[str], remove: bool = False) -> None:
    if advertisers:
        ch.insert("memberships", MEMBERSHIPS_COLUMNS,
                  [(email, a, 1 if remove else 0, time.time_ns(), _now()) for a in dict.fromkeys(advertisers)])


def disable_user(ch: ClickHouse, email: str) -> bool:
    user = get_user(ch, email)
    if user is None:
        return False
    ch.insert("users", USERS_COLUMNS, [(user.email, user.password_hash, 1, time.time_ns(), _now())])
    return True


def get_user(ch: ClickHouse, email: str) -> User | None:
    rows = ch.execute("SELECT email, password_hash, disabled FROM users FINAL WHERE email = %(e)s", {"e": email})
    return User(rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None


def user_advertisers(ch: ClickHouse, email: str) -> list[str]:
    """The advertisers ``email`` may see (none for an unknown or disabled user)."""
    rows = ch.execute(
        "SELECT advertiser FROM memberships FINAL WHERE email = %(e)s AND deleted = 0 "
        "AND email IN (SELECT email FROM users FINAL WHERE email = %(e)s AND disabled = 0) ORDER BY advertiser",
        {"e": email},
    )
    return [r[0] for r in rows]


def authenticate(ch: ClickHouse, email: str, password: str) -> User | None:
    """The user if the password matches and the account is enabled, else None."""
    try:
        email = normalize_email(email)
    except AdServerError:
        _dummy_check(password)
        return None
    user = get_user(ch, email)
    if user is None or user.disabled:
        _dummy_check(password)
        return None
    return user if verify_password(password, user.password_hash) else None


class LoginThrottle:
    """Failed logins per account and per client address in a sliding-ish window (fixed, from the
    first failure): at ``account_limit`` / ``ip_limit`` failures further attempts are refused until
    the window ends. A successful login clears the account's counter (not the address's)."""

    def __init__(self, client: redis.Redis, account_limit: int = 5, ip_limit: int = 20, window: int = 900,
                 prefix: str = "adserver:login") -> None:
        self.client = client
        self.account_limit, self.ip_limit, self.window = account_limit, ip_limit, window
        self.prefix = prefix

    def _keys(self, email: str, ip: str) -> tuple[str, str]:
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return f"{self.prefix}:acct:{account}", f"{self.prefix}:ip:{ip}"

    def retry_after(self, email: str, ip: str) -> int:
        """Seconds until a login may be tried again; 0 if allowed now."""
        account_key, ip_key = self._keys(email, ip)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(account_key).ttl(account_key).get(ip_key).ttl(ip_key)
        account, account_ttl, per_ip, ip_ttl = pipe.execute()
        wait = 0
        if account is not None and int(account) >= self.account_limit:
            wait = max(wait, account_ttl if account_ttl > 0 else self.window)
        if per_ip is not None and int(per_ip) >= self.ip_limit:
            wait = max(wait, ip_ttl if ip_ttl > 0 else self.window)
        return wait

    def failure(self, email: str, ip: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        for key in self._keys(email, ip):
            pipe.set(key, 0, ex=self.window, nx=True).incr(key)
        pipe.execute()

    def success(self, email: str) -> None:
        self.client.delete(self._keys(email, "")[0])
