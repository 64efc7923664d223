"""Passwords, users and memberships, login throttling (real Redis and ClickHouse)."""

from __future__ import annotations

import pytest

from adserver.console import accounts
from tracker.errors import AdServerError


def test_password_hash_is_salted_scrypt_with_its_parameters():
    first, second = accounts.hash_password("a long passphrase"), accounts.hash_password("a long passphrase")
    assert first != second  # random salt
    scheme, log_n, r, p, salt, key = first.split("$")
    assert (scheme, log_n, r, p) == ("scrypt", "15", "8", "1") and len(salt) == 22 and len(key) == 43
    assert accounts.verify_password("a long passphrase", first)
    assert not accounts.verify_password("a long passphrasE", first)
    assert not accounts.verify_password("a long passphrase", first[:-2] + "AA")
    assert not accounts.verify_password("a long passphrase", "md5$whatever")
    assert not accounts.verify_password("x", "scrypt$40$8$1$AAAA$AAAA")  # absurd cost refused, not computed


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


def test_throttle_counts_failures_per_account_and_per_address(redis_client):
    throttle = accounts.LoginThrottle(redis_client, account_limit=3, ip_limit=5, window=60)
    for _ in range(2):
        throttle.failure("a@x.example", "10.0.0.1")
    assert throttle.retry_after("a@x.example", "10.0.0.1") == 0
    throttle.failure("A@x.example ", "10.0.0.2")  # same account, other address
    assert 0 < throttle.retry_after("a@x.example", "10.0.0.9") <= 60
    assert throttle.retry_after("b@x.example", "10.0.0.1") == 0
    for i in range(3):
        throttle.failure(f"user{i}@x.example", "10.0.0.1")  # the address reaches 5 failures
    assert throttle.retry_after("fresh@x.example", "10.0.0.1") > 0
    assert throttle.retry_after("fresh@x.example", "10.0.0.3") == 0
    throttle.success("a@x.example")
    assert throttle.retry_after("a@x.example", "10.0.0.3") == 0
    assert all(redis_client.ttl(k) > 0 for k in redis_client.keys("adserver:login:*"))
    assert not any(b"x.example" in k for k in redis_client.keys("*"))  # no e-mail address in key names
