"""Daily budgets: spend counted in Redis, paced through the advertiser's day, never overshot.

Spend is kept in integer micro-units (``spend:{<campaign>}:<local day>``), so concurrent servers add
up exactly. Every check-and-charge is one server-side script, atomic across all servers; its keys
share the campaign's hash tag, so on a Redis Cluster it runs on the one primary owning the campaign's
slot, whatever stream partition the visitor's hits go to (``tracker.partitions``):

- a CPM impression reserves its price only if the spend stays within the paced allowance; a refused
  reservation means the campaign sits this request out, so spend never exceeds the budget;
- a CPC campaign is checked at serving time (allowance not yet reached) and charged on the click,
  at most what is left of the day's budget: clicks on ads served just before the budget ran out
  are free to the advertiser rather than billed beyond what they allowed.

Pacing spreads the budget over the day: by a fraction ``f`` of the advertiser's local day, at most
``budget * (f + ahead * (1 - f))`` may be spent: a little ahead of an even spread (so a quiet hour's
unspent share can be caught up), reaching the whole budget only at midnight. A campaign is thus not
exhausted by the morning's traffic and still has budget for the evening's visitors.

A CPC check takes nothing, so it need not be atomic: each process reads a campaign's spend at most
once a second (``CHECK_SECONDS``) and compares locally, which saves an ad one of its three Redis
round trips. The price is that another server's clicks are seen up to a second late, so a campaign
may be shown for up to a second after its budget ran out; those clicks are then free, since a
charge never exceeds what is left (the check-and-charge above stays atomic). A process sees its
own charges at once.

A CPM impression takes its price from a **lease** the process holds for the campaign: one atomic
script reserves some impressions' worth (what the paced allowance leaves room for, at least one
impression), and the next impressions spend it locally, without a round trip (under the benchmark's
load this was an ad's third Redis call for three ads in four). A lease lives ``LEASE_SECONDS``; the
next reservation after that (or after it ran out) gives its unspent part back in the same script
that takes the next one. Its size follows the process's own rate for the campaign: one impression
at first, twice what the last lease served when it ran out, what it served when it aged, at most
``LEASE_IMPRESSIONS``; so a quiet campaign reserves per impression as before. What Redis counts as
spent (the console's "today") is what was shown plus the leases outstanding: never more than the
allowance, ahead of what was shown by at most one lease per serving process, i.e. about a second
of its traffic (a process that stops keeps its lease counted: a little under-delivery, never an
overshoot).
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import redis

MICROS = 1_000_000
PACE_AHEAD = 1 / 24  # may run one hour of budget ahead of an even spread
UNLIMITED = 2**62
CHECK_SECONDS = 1.0
CHECKS_MAX = 100_000  # spend keys remembered per process (one per campaign and day)
LEASE_IMPRESSIONS = 16  # CPM impressions' worth a process reserves at once
LEASE_SECONDS = 1.0  # then the unspent part goes back with the next reservation

_RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if spent + amount > tonumber(ARGV[2]) then return -1 end
if amount > 0 then
  spent = redis.call('INCRBY', KEYS[1], amount)
  redis.call('EXPIRE', KEYS[1], 259200)
end
return spent
"""

# KEYS[1] spend key; ARGV: micro-units given back (an expired lease's rest), wanted, at least, limit.
# Returns what was taken (a multiple of the minimum), or -1 if not even the minimum fits.
_LEASE = """
local back = tonumber(ARGV[1])
if back > 0 then redis.call('DECRBY', KEYS[1], back) end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local least = tonumber(ARGV[3])
local room = tonumber(ARGV[4]) - spent
local take = math.min(tonumber(ARGV[2]), room - room % least)
if take < least then return -1 end
redis.call('INCRBY', KEYS[1], take)
redis.call('EXPIRE', KEYS[1], 259200)
return take
"""

_CHARGE = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[3])) then return -1 end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local room = tonumber(ARGV[2]) - spent
local amount = math.min(tonumber(ARGV[1]), room)
if amount <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], 259200)
return amount
"""


def spend_key(campaign: str, day: str) -> str:
    return "spend:{%s}:%s" % (campaign, day)


def local_day(now: float, timezone: str) -> tuple[str, float]:
    """The advertiser's local date (``YYYYMMDD``) and the fraction of that day already gone."""
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.strftime("%Y%m%d"), min(1.0, (local - midnight).total_seconds() / 86400)


def local_date(now: float, timezone: str) -> date:
    """The advertiser's calendar date at ``now`` (campaign start and end dates are local)."""
    return datetime.fromtimestamp(now, ZoneInfo(timezone)).date()


def paced_allowance(budget: float, day_fraction: float, ahead: float = PACE_AHEAD) -> int:
    """Micro-units that may be spent by this point of the day (the whole budget by its end)."""
    if budget <= 0:
        return UNLIMITED
    day_fraction = min(1.0, max(0.0, day_fraction))
    return int(round(budget * (day_fraction + ahead * (1.0 - day_fraction)) * MICROS))


def to_micros(amount: float) -> int:
    return int(round(amount * MICROS))


class Budgets:
    """Spend counters of every campaign, shared by all servers through Redis."""

    def __init__(self, client: redis.Redis, check_seconds: float = CHECK_SECONDS,
                 lease_impressions: int = LEASE_IMPRESSIONS) -> None:
        self.client = client
        self.check_seconds = check_seconds
        self.lease_impressions = lease_impressions  # 1: every CPM impression reserves in Redis itself
        self._reserve = client.register_script(_RESERVE)
        self._lease = client.register_script(_LEASE)
        self._charge = client.register_script(_CHARGE)
        self._checked: dict[str, tuple[float, int]] = {}  # spend key -> (valid until, spend read)
        self._leases: dict[str, tuple[float, int, int]] = {}  # spend key -> (expires, micro-units left, shown)
        self._lock = threading.Lock()

    def reserve(self, campaign: str, timezone: str, budget: float, amount: float,
                now: float | None = None) -> bool:
        """Take ``amount`` (0 for a CPC check) from today's allowance; False if it does not fit."""
        day, fraction = local_day(now or time.time(), timezone)
        limit = paced_allowance(budget, fraction)
        key = spend_key(campaign, day)
        if amount <= 0 and self.check_seconds > 0:
            return self._spend_seen(key) <= limit
        self._checked.pop(key, None)
        if amount > 0 and self.lease_impressions > 1:
            return self._from_lease(key, to_micros(amount), limit)
        return int(self._reserve(keys=[key], args=[to_micros(amount), limit])) >= 0

    def _from_lease(self, key: str, amount: int, limit: int) -> bool:
        """Take ``amount`` from this process's lease on ``key``, leasing again when it is spent or old."""
        clock = time.monotonic()
        with self._lock:
            expires, left, used = self._leases.get(key, (0.0, 0, 0))
            if left >= amount and expires > clock:
                self._leases[key] = (expires, left - amount, used + 1)
                return True
            self._leases.pop(key, None)  # given back below; a failed call must not give it twice
        # As many impressions as the last lease served, doubled (it ran out) or not (it aged), from one.
        count = max(1, min(self.lease_impressions, 2 * used if expires > clock else used))
        taken = int(self._lease(keys=[key], args=[left, amount * count, amount, limit]))
        if taken < amount:
            return False
        with self._lock:
            if len(self._leases) >= CHECKS_MAX:
                self._leases.clear()  # their rest stays counted: under-delivery, never overshoot
            _, other, _ = self._leases.get(key, (0.0, 0, 0))  # another thread's lease taken meanwhile
            self._leases[key] = (clock + LEASE_SECONDS, taken - amount + other, 1)
        return True

    def _spend_seen(self, key: str) -> int:
        """The spend under ``key`` as read at most ``check_seconds`` ago (see the module docstring)."""
        clock = time.monotonic()
        seen = self._checked.get(key)
        if seen is not None and seen[0] > clock:
            return seen[1]
        spent = int(self.client.get(key) or 0)
        if len(self._checked) >= CHECKS_MAX:
            self._checked.clear()
        self._checked[key] = (clock + self.check_seconds, spent)
        return spent

    def charge(self, campaign: str, timezone: str, budget: float, amount: float, impression_id: str,
               now: float | None = None, remember_seconds: int = 8 * 86400) -> float | None:
        """Charge a click: once per impression, at most what is left of the day's budget.

        Returns what was charged, or None for a repeated click on the same impression (not charged).
        """
        day, _ = local_day(now or time.time(), timezone)
        limit = to_micros(budget) if budget > 0 else UNLIMITED
        key = spend_key(campaign, day)
        charged = int(self._charge(keys=[key, "clk:{%s}:%s" % (campaign, impression_id)],
                                   args=[to_micros(amount), limit, remember_seconds]))
        self._checked.pop(key, None)  # this process sees its own charge at once
        return None if charged < 0 else charged / MICROS

    def spent(self, campaign: str, timezone: str, now: float | None = None) -> float:
        day, _ = local_day(now or time.time(), timezone)
        return int(self.client.get(spend_key(campaign, day)) or 0) / MICROS
