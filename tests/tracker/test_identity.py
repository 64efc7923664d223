from __future__ import annotations

import pytest

from tracker.identity import VisitorIds, tracking_allowed

OLD, NEW = "old-key-0123456789abcdef", "new-key-0123456789abcdef"


def test_new_ids_verify_and_are_random():
    ids = VisitorIds([NEW])
    (u1, c1), (u2, _) = ids.new(), ids.new()
    assert u1 != u2
    assert ids.verify(c1) == u1


def test_rotation_newest_signs_all_verify():
    _, cookie = VisitorIds([OLD]).new()
    rotated = VisitorIds([NEW, OLD])
    assert rotated.verify(cookie) is not None
    assert VisitorIds([NEW]).verify(cookie) is None
    uid = rotated.verify(cookie)
    assert VisitorIds([NEW]).verify(rotated.cookie_value(uid)) == uid


@pytest.mark.parametrize("mutate", [
    lambda c: ("B" if c[0] != "B" else "C") + c[1:],
    lambda c: c[:-1] + ("B" if c[-1] != "B" else "C"),
    lambda c: c[:-2],
    lambda c: c + "A",
    lambda c: c.replace(".", ""),
    lambda c: "",
    lambda c: "x" * 5000,
    lambda c: c.split(".")[0] + "." + "A" * 16,
    lambda c: c[:22] + ".\u00e9" + c[24:],
])
def test_tampered_cookies_are_rejected(mutate):
    ids = VisitorIds([NEW])
    _, cookie = ids.new()
    assert ids.verify(mutate(cookie)) is None


def test_privacy_signals():
    assert tracking_allowed({}, {})
    assert not tracking_allowed({"optout": "1"}, {})
    assert not tracking_allowed({}, {"Sec-GPC": "1"})
    assert tracking_allowed({"optout": "0"}, {"Sec-GPC": "0"})


def test_do_not_track_is_honoured():
    assert not tracking_allowed({}, {"DNT": "1"})
    assert tracking_allowed({}, {"DNT": "0"})
