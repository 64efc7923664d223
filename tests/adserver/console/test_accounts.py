"""Passwords, users and memberships, login throttling (real Redis and ClickHouse)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import datetime

import pytest

from adserver.console import accounts
from tracker.errors import AdServerError
from tracker.schema import USERS_COLUMNS


def test_password_hash_is_salted_scrypt_with_its_parameters():
    first, second = accounts.hash_password("a long passphrase"), accounts.hash_password("a long passphrase")
    assert first != second  # random salt
    scheme, log_n, r, p, salt, key = first.split("$")
    assert (scheme, log_n, r, p) == ("scrypt", "17", "8", "1") and len(salt) == 22 and len(key) == 43
    assert accounts.verify_password("a long passphrase", first)
    assert not accounts.verify_password("a long passphrasE", first)
    assert not accounts.verify_password("a long passphrase", first[:-2] + "AA")
    assert not accounts.verify_password("a long passphrase", "md5$whatever")
    assert not accounts.verify_password("x", "scrypt$40$8$1$AAAA$AAAA")  # absurd cost refused, not computed


def _old_hash(password: str, log_n: int = 15) -> str:
    """A hash as the previous parameters made it (N = 2**15), computed here without the module."""
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=1 << log_n, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)
    return f"scrypt${log_n}$8$1${accounts._b64(salt)}${accounts._b64(key)}"


def _stored(ch, email: str) -> str:
    return ch.execute("SELECT password_hash FROM users FINAL WHERE email = %(e)s", {"e": email})[0][0]


def test_old_hashes_still_verify_and_are_rehashed_at_sign_in(ch):
    accounts.save_user(ch, "olga@shop.example", "correct horse battery", ["shop-a"])
    old = _old_hash("correct horse battery")
    ch.insert("users", USERS_COLUMNS, [("olga@shop.example", old, 0, time.time_ns(), datetime(2026, 1, 1))])
    assert accounts.verify_password("correct horse battery", old)
    assert accounts.authenticate(ch, "olga@shop.example", "wrong horse battery") is None
    assert _stored(ch, "olga@shop.example") == old  # a wrong password changes nothing
    assert accounts.authenticate(ch, "olga@shop.example", "correct horse battery") is not None
    upgraded = _stored(ch, "olga@shop.example")
    assert upgraded.startswith("scrypt$17$8$1$")
    assert accounts.verify_password("correct horse battery", upgraded)
    assert accounts.user_advertisers(ch, "olga@shop.example") == ["shop-a"]
    assert accounts.authenticate(ch, "olga@shop.example", "correct horse battery") is not None
    assert _stored(ch, "olga@shop.example") == upgraded  # current parameters: no new hash


def test_a_rehash_never_undoes_a_newer_change_of_the_user(ch):
    """Sign-in read the user, then the password was changed (or the user disabled) before its rehash
    was written: the change wins."""
    accounts.save_user(ch, "pia@shop.example", "correct horse battery", ["shop-a"])
    ch.insert("users", USERS_COLUMNS, [("pia@shop.example", _old_hash("correct horse battery"), 0, time.time_ns(),
                                        datetime(2026, 1, 1))])
    seen = accounts.get_user(ch, "pia@shop.example")
    accounts.save_user(ch, "pia@shop.example", "a brand new passphrase", ["shop-a"])
    accounts.rehash(ch, seen, "correct horse battery")
    assert accounts.authenticate(ch, "pia@shop.example", "a brand new passphrase") is not None
    assert accounts.authenticate(ch, "pia@shop.example", "correct horse battery") is None
    accounts.disable_user(ch, "pia@shop.example")
    accounts.rehash(ch, seen, "correct horse battery")
    assert accounts.get_user(ch, "pia@shop.example").disabled


def test_few_hashes_run_at_once(monkeypatch):
    """Each takes 128 MiB: a burst of sign-ins must not take a gigabyte per process."""
    running, most = [0], [0]
    lock = threading.Lock()
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(accounts.hashlib, "scrypt", counting)
    threads = [threading.Thread(target=accounts.hash_password, args=("a long passphrase",)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= most[0] <= accounts.SCRYPT_CONCURRENCY < 6


@pytest.mark.parametrize("password", ["short", "aaaaaaaaaaaaaaa", " " * 12])
def test_weak_passwords_are_refused(password):
    with pytest.raises(AdServerError):
        accounts.check_password(password)


def test_emails_are_checked_and_normalised():
    assert accounts.normalize_email("  Alice@Shop.Example ") == "alice@shop.example"
    for bad in ("alice", "a@b", "<x>@shop.example", "a b@shop.example", "a@shop..example"):
        with pytest.raises(AdServerError):
            accounts.normalize_email(bad)


def test_users_memberships_and_disabling(ch):
    accounts.save_user(ch, "Alice@Shop.Example", "correct horse battery", ["shop-a", "shop-b"])
    assert accounts.user_advertisers(ch, "alice@shop.example") == ["shop-a", "shop-b"]
    assert accounts.authenticate(ch, "ALICE@shop.example", "correct horse battery").email == "alice@shop.example"
    assert accounts.authenticate(ch, "alice@shop.example", "wrong horse battery") is None
    assert accounts.authenticate(ch, "nobody@shop.example", "correct horse battery") is None
    accounts.set_memberships(ch, "alice@shop.example", ["shop-b"], remove=True)
    assert accounts.user_advertisers(ch, "alice@shop.example") == ["shop-a"]
    assert accounts.disable_user(ch, "alice@shop.example")
    assert accounts.user_advertisers(ch, "alice@shop.example") == []
    assert accounts.authenticate(ch, "alice@shop.example", "correct horse battery") is None
    stored = ch.execute("SELECT password_hash FROM users FINAL")[0][0]
    assert "correct horse" not in stored and stored.startswith("scrypt$")


def test_throttle_slows_an_account_per_address_and_stops_an_address(redis_client):
    throttle = accounts.LoginThrottle(redis_client, free_failures=2, ip_limit=5, window=60)
    for _ in range(2):
        assert throttle.attempt("a@x.example", "10.0.0.1") == 0
    assert 0 < throttle.attempt("A@x.example ", "10.0.0.1") <= throttle.first_delay  # same account, same address
    assert throttle.attempt("a@x.example", "10.0.0.9") == 0  # same account, other address
    assert throttle.attempt("b@x.example", "10.0.0.1") == 0  # other account, same address
    for i in range(2):
        assert throttle.attempt(f"user{i}@x.example", "10.0.0.1") == 0  # the address reaches 5 failures
    assert 0 < throttle.attempt("fresh@x.example", "10.0.0.1") <= 60
    assert throttle.attempt("fresh@x.example", "10.0.0.3") == 0
    assert all(redis_client.pttl(k) > 0 for k in redis_client.keys("adserver:login:*"))
    assert not any(b"x.example" in k for k in redis_client.keys("*"))  # no e-mail address in key names


def test_a_right_password_gives_back_its_attempt(redis_client):
    throttle = accounts.LoginThrottle(redis_client, free_failures=2, ip_limit=3, window=60)
    for _ in range(10):  # signing in again and again from one address never uses up its failures
        assert throttle.attempt("a@x.example", "10.0.0.1") == 0
        throttle.success("a@x.example", "10.0.0.1")
    for i in range(3):
        assert throttle.attempt(f"user{i}@x.example", "10.0.0.1") == 0
    assert throttle.attempt("a@x.example", "10.0.0.1") > 0
