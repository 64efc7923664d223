"""Login throttling on real Redis: guesses slow down per account and client address, without
locking the account's owner out, and concurrent requests get no guess more than sequential ones."""

from __future__ import annotations

import threading

import pytest

from adserver.console.accounts import LoginThrottle, address_key
from tests.adserver.console.conftest import PASSWORD, csrf_of, login

WRONG = "bad password!"


def guesses_until_refused(client, email: str, addresses, limit: int = 40) -> int:
    """Wrong passwords, each from the next address, until one is refused (429): how many were checked."""
    addresses = iter(addresses)
    for checked in range(limit):
        response = login(client, email, WRONG, ip=next(addresses))
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) > 0
            return checked
        assert response.status_code == 401
    raise AssertionError(f"{limit} wrong passwords for {email} were all checked")


def same(address: str):
    while True:
        yield address


def test_parallel_guesses_get_no_more_checks_than_sequential_ones(app, client, tenants):
    sequential = guesses_until_refused(client, "bob@b.example", same("198.51.100.30"))
    assert sequential > 0

    threads = 4 * sequential + 4
    barrier = threading.Barrier(threads)
    statuses: list[int] = []

    def guess() -> None:
        own = app.test_client()  # its own cookie jar: its own CSRF token
        token = csrf_of(own.get("/reports/login", environ_base={"REMOTE_ADDR": "198.51.100.31"}).get_data(as_text=True))
        barrier.wait()
        response = own.post("/reports/login", data={"email": "alice@a.example", "password": WRONG,
                                                     "csrf_token": token},
                            environ_base={"REMOTE_ADDR": "198.51.100.31"})
        statuses.append(response.status_code)

    workers = [threading.Thread(target=guess) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) == sequential


def test_the_owner_signs_in_from_another_address_while_one_address_guesses(client, tenants):
    guessed = guesses_until_refused(client, "alice@a.example", same("198.51.100.1"))
    assert guessed > 0
    for _ in range(3):  # refused without being checked, again and again
        assert login(client, "alice@a.example", PASSWORD, ip="198.51.100.1").status_code == 429
    assert login(client, "alice@a.example", PASSWORD, ip="203.0.113.44").status_code == 302


def test_ipv6_addresses_of_one_64_share_a_counter(client, tenants):
    single = guesses_until_refused(client, "bob@b.example", same("2001:db8:aa::1"))
    spread = guesses_until_refused(client, "alice@a.example",
                                   (f"2001:db8:1:2:{i:x}::{i + 1:x}" for i in range(100)))
    assert spread == single  # a new address of the same /64 for every guess changes nothing
    assert login(client, "alice@a.example", WRONG, ip="2001:db8:1:3::1").status_code == 401  # another /64
    assert login(client, "alice@a.example", PASSWORD, ip="2001:db8:1:3::2").status_code == 302


@pytest.mark.parametrize("address, key", [
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("198.51.100.7", "198.51.100.7"),
    ("unknown", "unknown"),
])
def test_address_keys(address, key):
    assert address_key(address) == key


def test_the_delay_doubles_after_each_further_failure(redis_client):
    throttle = LoginThrottle(redis_client)
    now = 1_000_000.0
    checked, waits = 0, []
    while len(waits) < 12:
        wait = throttle.attempt("a@x.example", "10.0.0.1", now=now)
        if wait:
            waits.append(wait)
            assert throttle.attempt("a@x.example", "10.0.0.1", now=now + wait - 1) > 0  # refused till the end
            now += wait
        else:
            checked += 1  # a wrong password: counted before it was checked
        assert throttle.attempt("a@x.example", "10.0.0.2", now=now) == 0  # the account from elsewhere
        throttle.success("a@x.example", "10.0.0.2")
    assert checked == throttle.free_failures + len(waits) - 1  # one guess after each wait
    assert waits[0] > 0
    assert all(b == min(2 * a, throttle.max_delay) for a, b in zip(waits, waits[1:])), waits
    assert waits[-1] == throttle.max_delay
    throttle.success("a@x.example", "10.0.0.1")  # the right password from there starts afresh
    assert throttle.attempt("a@x.example", "10.0.0.1", now=now) == 0
