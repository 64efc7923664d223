"""Budget checks of CPC campaigns (read at most once a second per process, own charges seen at once) and\nCPM leases (one script call for many impressions, never beyond the allowance)."""

from __future__ import annotations

import secrets
import time

import pytest

from adserver.campaigns import budgets as budgets_module
from adserver.campaigns.budgets import Budgets, spend_key
from tests.cluster.conftest import cluster, cluster_settings, cluster_stores  # noqa: F401 - fixtures

DAY = 1_764_244_800.0  # 2025-11-27 12:00 UTC: half the day gone, so pacing allows a good part of the budget


def test_cpc_check_sees_its_own_charge_at_once(redis_client):
    b = Budgets(redis_client)
    assert b.reserve("cpc-own", "UTC", 1.0, 0.0, now=DAY)
    assert b.charge("cpc-own", "UTC", 1.0, 1.0, "imp-1", now=DAY) == 1.0
    assert not b.reserve("cpc-own", "UTC", 1.0, 0.0, now=DAY)


def test_another_servers_charge_is_seen_within_the_check_period(redis_client, monkeypatch):
    here, there = Budgets(redis_client), Budgets(redis_client)
    assert here.reserve("cpc-other", "UTC", 1.0, 0.0, now=DAY)
    assert there.charge("cpc-other", "UTC", 1.0, 1.0, "imp-1", now=DAY) == 1.0
    assert here.reserve("cpc-other", "UTC", 1.0, 0.0, now=DAY)  # read less than a second ago: not seen yet
    later = time.monotonic() + budgets_module.CHECK_SECONDS + 0.01
    monkeypatch.setattr(budgets_module.time, "monotonic", lambda: later)
    assert not here.reserve("cpc-other", "UTC", 1.0, 0.0, now=DAY)


def test_cpc_checks_cost_one_read_a_second(redis_client):
    b = Budgets(redis_client)
    redis_client.set(spend_key("cpc-reads", "20251127"), 10)
    before = _calls(redis_client, "get")
    for _ in range(50):
        assert b.reserve("cpc-reads", "UTC", 1.0, 0.0, now=DAY)
    assert _calls(redis_client, "get") - before == 1


def test_without_a_check_period_every_check_reads(redis_client):
    b = Budgets(redis_client, check_seconds=0)
    assert b.reserve("cpc-fresh", "UTC", 1.0, 0.0, now=DAY)
    redis_client.set(spend_key("cpc-fresh", "20251127"), 2_000_000)
    assert not b.reserve("cpc-fresh", "UTC", 1.0, 0.0, now=DAY)


def test_cpm_reservations_stay_atomic_without_leases(redis_client):
    here, there = Budgets(redis_client, lease_impressions=1), Budgets(redis_client, lease_impressions=1)
    # Budget 2.0 at midday: the paced allowance is 2.0 * (0.5 + 0.5 / 24) = 1.04, four impressions of 0.25
    taken = [b.reserve("cpm-atomic", "UTC", 2.0, 0.25, now=DAY) for b in (here, there) * 3]
    assert taken == [True] * 4 + [False] * 2
    assert here.spent("cpm-atomic", "UTC", now=DAY) == 1.0


def _lease_grown(b: Budgets, campaign: str, budget: float, price: float) -> int:
    """Reserve until this process's lease is at its largest; the impressions shown."""
    shown, size = 0, 1
    while size < budgets_module.LEASE_IMPRESSIONS:
        for _ in range(size):
            assert b.reserve(campaign, "UTC", budget, price, now=DAY)
        shown += size
        size *= 2
    return shown


def test_a_lease_starts_at_one_impression_so_quiet_campaigns_spend_exactly(redis_client):
    b = Budgets(redis_client)
    assert b.reserve("cpm-quiet", "UTC", 1000.0, 0.5, now=DAY)
    assert b.spent("cpm-quiet", "UTC", now=DAY) == 0.5


def test_busy_campaigns_cost_one_script_call_per_lease(redis_client):
    b = Budgets(redis_client)
    shown = _lease_grown(b, "cpm-calls", 1000.0, 0.01)  # leases of 1, 2, 4, 8 impressions
    before = _calls(redis_client, "evalsha")
    for _ in range(3 * budgets_module.LEASE_IMPRESSIONS):
        assert b.reserve("cpm-calls", "UTC", 1000.0, 0.01, now=DAY)
    assert _calls(redis_client, "evalsha") - before == 3
    shown += 3 * budgets_module.LEASE_IMPRESSIONS
    assert b.spent("cpm-calls", "UTC", now=DAY) == pytest.approx(0.01 * shown)  # every lease spent to the end


def test_a_lease_takes_what_the_allowance_leaves_and_never_more(redis_client):
    here, there = Budgets(redis_client), Budgets(redis_client)
    shown = _lease_grown(here, "cpm-lease", 2.0, 0.01)
    # 1.04 allowed at midday: the next lease is 16 impressions, and what the other process can still take
    rest = 104 - shown - budgets_module.LEASE_IMPRESSIONS
    assert here.reserve("cpm-lease", "UTC", 2.0, 0.01, now=DAY)
    assert sum(there.reserve("cpm-lease", "UTC", 2.0, 0.01, now=DAY) for _ in range(200)) == rest
    assert sum(here.reserve("cpm-lease", "UTC", 2.0, 0.01, now=DAY) for _ in range(200)) == \
        budgets_module.LEASE_IMPRESSIONS - 1
    assert here.spent("cpm-lease", "UTC", now=DAY) == pytest.approx(1.04)


def test_an_old_lease_gives_its_rest_back_with_the_next_one(redis_client, monkeypatch):
    b = Budgets(redis_client)
    shown = _lease_grown(b, "cpm-back", 1000.0, 0.01)
    assert b.reserve("cpm-back", "UTC", 1000.0, 0.01, now=DAY)  # a lease of 16, one shown
    assert b.spent("cpm-back", "UTC", now=DAY) == pytest.approx(0.01 * (shown + budgets_module.LEASE_IMPRESSIONS))
    later = time.monotonic() + budgets_module.LEASE_SECONDS + 0.01
    monkeypatch.setattr(budgets_module.time, "monotonic", lambda: later)
    assert b.reserve("cpm-back", "UTC", 1000.0, 0.01, now=DAY)
    # the aged lease served one: its 15 others go back, and the next lease is of one impression
    assert b.spent("cpm-back", "UTC", now=DAY) == pytest.approx(0.01 * (shown + 2))


def test_leases_of_many_processes_never_exceed_the_allowance(redis_client):
    processes = [Budgets(redis_client) for _ in range(5)]
    shown = sum(b.reserve("cpm-many", "UTC", 2.0, 0.01, now=DAY) for _ in range(40) for b in processes)
    assert shown == 104  # 1.04 of allowance: 104 impressions of 0.01, whichever process shows them
    assert processes[0].spent("cpm-many", "UTC", now=DAY) == pytest.approx(1.04)


def _calls(client, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


@pytest.fixture(params=["server", "cluster"])
def budget_redis(request):
    """The Redis server, and the Redis Cluster (where campaigns' keys are spread over the primaries)."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_stores").redis("web")
    return request.getfixturevalue("redis_client")


def test_budgets_hold_for_campaigns_on_every_primary(budget_redis):
    here, there = Budgets(budget_redis, check_seconds=0), Budgets(budget_redis, check_seconds=0)
    campaigns = [f"cpm-{secrets.token_hex(4)}-{n}" for n in range(12)]
    for campaign in campaigns:  # on a cluster, spread over the primaries
        taken = [b.reserve(campaign, "UTC", 2.0, 0.25, now=DAY) for b in (here, there) * 3]
        # leases of one impression each, then of two: the first process's second lease takes the rest
        assert taken == [True, True, True, False, True, False]
        assert there.spent(campaign, "UTC", now=DAY) == 1.0
        # a CPC click: charged once per impression, never beyond the day's budget
        assert here.charge(campaign, "UTC", 1.5, 0.4, "imp-1", now=DAY) == 0.4
        assert there.charge(campaign, "UTC", 1.5, 0.4, "imp-1", now=DAY) is None
        assert here.charge(campaign, "UTC", 1.5, 0.4, "imp-2", now=DAY) == pytest.approx(0.1)
        assert here.charge(campaign, "UTC", 1.5, 0.4, "imp-3", now=DAY) == 0.0
