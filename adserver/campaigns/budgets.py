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
"""

from __future__ import annotations

import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import redis

MICROS = 1_000_000
PACE_AHEAD = 1 / 24  # may run one hour of budget ahead of an even spread
UNLIMITED = 2**62
CHECK_SECONDS = 1.0
CHECKS_MAX = 100_000  # spend keys remembered per process (one per campaign and day)

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

    def __init__(self, client: redis.Redis, check_seconds: float = CHECK_SECONDS) -> None:
        self.client = client
        self.check_seconds = check_seconds
        self._reserve = client.register_script(_RESERVE)
        self._charge = client.register_script(_CHARGE)
        self._checked: dict[str, tuple[float, int]] = {}  # spend key -> (valid until, spend read)

    def reserve(self, campaign: str, timezone: str, budget: float, amount: float,
                now: float | None = None) -> bool:
        """Take ``amount`` (0 for a CPC check) from today's allowance; False if it does not fit."""
        day, fraction = local_day(now or time.time(), timezone)
        limit = paced_allowance(budget, fraction)
        key = spend_key(campaign, day)
        if amount <= 0 and self.check_seconds > 0:
            return self._spend_seen(key) <= limit
        self._checked.pop(key, None)
        return int(self._reserve(keys=[key], args=[to_micros(amount), limit])) >= 0

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
