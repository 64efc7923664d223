"""Marketer accounts: users with scrypt password hashes, their advertisers, and login throttling.

Passwords are hashed with scrypt (``hashlib.scrypt``, RFC 7914) and a random 16-byte salt:
N = 2**17, r = 8, p = 1, 32-byte key (OWASP's current minimum), 128 MiB and about 0.4 s per hash on
a server core, which makes guessing expensive while a login stays bearable. At most
``SCRYPT_CONCURRENCY`` hashes run at once per process, so a burst of sign-ins cannot take gigabytes.
The parameters are stored with each hash (``scrypt$17$8$1$<salt>$<key>``): older hashes still verify
with their own, and a successful sign-in stores a new hash with the current ones.

Each user has a session generation (:func:`session_generation`): a session is valid only while the
generation it began with is current, and signing out, a new password or disabling the user writes a
new one (:func:`bump_session_generation`), which ends every session of that user at once.

Users and memberships live in ClickHouse (``ReplacingMergeTree``: the newest version of a row wins)
and are read on every request, so a removed membership or a disabled user takes effect at once.
Failed logins are counted in Redis per account and client address (see :class:`LoginThrottle`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError
from tracker.events import ADVERTISER_RE
from tracker.schema import MEMBERSHIPS_COLUMNS, SESSION_GENERATIONS_COLUMNS, USERS_COLUMNS

SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 17, 8, 1, 32
SCRYPT_CONCURRENCY = 2  # hashes at once per process: 256 MiB at most; other sign-ins wait their turn
_scrypt_slots = threading.BoundedSemaphore(SCRYPT_CONCURRENCY)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
EMAIL_RE = re.compile(r"^[^@\s\"'<>\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+\Z")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int, dklen: int) -> bytes:
    # scrypt needs 128 * n * r * p bytes; hashlib's default ceiling (32 MiB) is below N = 2**17.
    n = 1 << log_n
    with _scrypt_slots:
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


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with other parameters than the current ones."""
    return not stored.startswith(f"scrypt${SCRYPT_LOG_N}${SCRYPT_R}${SCRYPT_P}$") or \
        len(_unb64(stored.rsplit("$", 1)[-1])) != SCRYPT_DKLEN


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
    version: int = 0  # of the row it was read from


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def save_user(ch: ClickHouse, email: str, password: str, advertisers: list[str]) -> User:
    """Create the user (or set a new password) and add the memberships; returns the user."""
    email = normalize_email(email)
    check_password(password)
    bad = [a for a in advertisers if not ADVERTISER_RE.match(a)]
    if bad:
        raise AdServerError(f"invalid advertiser ids: {bad}", "invalid_advertiser")
    user = User(email, hash_password(password), version=time.time_ns())
    ch.insert("users", USERS_COLUMNS, [(user.email, user.password_hash, 0, user.version, _now())])
    bump_session_generation(ch, email)  # a new password ends the sessions the old one opened
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
    bump_session_generation(ch, user.email)
    return True


def get_user(ch: ClickHouse, email: str) -> User | None:
    rows = ch.execute("SELECT email, password_hash, disabled, version FROM users FINAL WHERE email = %(e)s",
                      {"e": email})
    return User(rows[0][0], rows[0][1], bool(rows[0][2]), int(rows[0][3])) if rows else None


def rehash(ch: ClickHouse, user: User, password: str) -> None:
    """Store a hash of ``password`` with the current parameters for ``user`` (as read before).

    The row takes the version just after the one read: any change written since (a new password,
    disabling) has a later version and wins, so a sign-in cannot bring back what it read.
    """
    ch.insert("users", USERS_COLUMNS,
              [(user.email, hash_password(password), int(user.disabled), user.version + 1, _now())])


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
    if not verify_password(password, user.password_hash):
        return None
    if needs_rehash(user.password_hash):
        rehash(ch, user, password)
    return user


def session_generation(ch: ClickHouse, email: str) -> int:
    """The user's current session generation (0 until the first is written)."""
    rows = ch.execute("SELECT max(generation) FROM session_generations WHERE email = %(e)s", {"e": email})
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def bump_session_generation(ch: ClickHouse, email: str) -> int:
    """End every session of ``email``: write a generation above the current one, and return it.

    Rows are only inserted and the largest counts, so concurrent bumps each leave a generation
    above the one every existing session holds (no row is rewritten, nothing else is lost). The
    clock keeps generations unique across processes; ``current + 1`` keeps them growing if a clock
    is behind.
    """
    generation = max(time.time_ns(), session_generation(ch, email) + 1)
    ch.insert("session_generations", SESSION_GENERATIONS_COLUMNS, [(email, generation, _now())])
    return generation


def address_key(ip: str) -> str:
    """What one client is, for throttling: an IPv4 address, or the /64 of an IPv6 one.

    One IPv6 subscriber gets a whole /64 (often more) and picks any address in it, so counting full
    addresses would give them 2**64 fresh counters. IPv4-mapped addresses count as their IPv4.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# Counts the attempt before the password is checked, in one step: concurrent requests cannot all
# pass the check before any of them is counted. KEYS: the (account, address) hash, the address's
# counter (same hash tag: one slot in a cluster). ARGV: now (ms), free failures, first delay (ms),
# longest delay (ms), memory of an (account, address) (ms), address limit, address window (ms).
# Returns 0 (go ahead: counted as a failure until ``success``) or the milliseconds to wait.
_ATTEMPT = """
local per_address = tonumber(redis.call('GET', KEYS[2]) or '0')
if per_address >= tonumber(ARGV[6]) then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl <= 0 then ttl = tonumber(ARGV[7]) end
  return ttl
end
local now = tonumber(ARGV[1])
local blocked = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if now < blocked then
  return blocked - now
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local delay = 0
if failures >= tonumber(ARGV[2]) then
  delay = math.min(tonumber(ARGV[3]) * 2 ^ (failures - tonumber(ARGV[2])), tonumber(ARGV[4]))
end
-- Only a real delay is written: web servers' clocks and request threads disagree by a few ms, and an
-- 'until' of now + 0 would refuse a concurrent attempt stamped a moment earlier.
if delay > 0 then
  redis.call('HSET', KEYS[1], 'until', string.format('%d', now + delay))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('INCR', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
return 0
"""

# A right password: the (account, address) starts afresh and the address gets back the attempt it counted.
_SUCCESS = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
return 0
"""


class LoginThrottle:
    """Failed logins slow down per (account, client address), and stop per address.

    Each attempt is counted before its password is checked (one Redis script), as a failure until
    :meth:`success` says otherwise. From one address (an IPv4 address or an IPv6 /64), an account
    gets ``free_failures`` guesses at once; then each further guess waits ``first_delay`` seconds,
    doubling up to ``max_delay`` (answered 429 with ``Retry-After``). Nothing locks the account:
    its owner signs in from any other address meanwhile, and the right password from the guessed
    address starts afresh. An address is also stopped after ``ip_limit`` failures on any accounts
    within ``window`` seconds. An (account, address) is remembered for ``memory`` seconds after its
    last attempt. Times come from the web servers' clocks (kept in sync by NTP).
    """

    def __init__(self, client: redis.Redis, free_failures: int = 3, first_delay: float = 30.0,
                 max_delay: float = 900.0, ip_limit: int = 20, window: int = 900, memory: int = 86400,
                 prefix: str = "adserver:login") -> None:
        self.client = client
        self.free_failures, self.first_delay, self.max_delay = free_failures, first_delay, max_delay
        self.ip_limit, self.window, self.memory = ip_limit, window, memory
        self.prefix = prefix
        self._attempt = client.register_script(_ATTEMPT)
        self._success = client.register_script(_SUCCESS)

    def _keys(self, email: str, ip: str) -> list[str]:
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        where = f"{self.prefix}:{{{address_key(ip)}}}"
        return [f"{where}:acct:{account}", f"{where}:ip"]

    def attempt(self, email: str, ip: str, now: float | None = None) -> float:
        """Seconds to wait before ``email`` may be tried from ``ip``; 0: check the password now (the
        attempt is already counted as a failure)."""
        now_ms = int((time.time() if now is None else now) * 1000)
        wait_ms = self._attempt(keys=self._keys(email, ip), args=[
            now_ms, self.free_failures, int(self.first_delay * 1000), int(self.max_delay * 1000),
            self.memory * 1000, self.ip_limit, self.window * 1000])
        return int(wait_ms) / 1000

    def success(self, email: str, ip: str) -> None:
        self._success(keys=self._keys(email, ip))
