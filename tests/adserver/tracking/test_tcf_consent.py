"""IAB TCF consent end to end on the real servers: ``gdpr``/``gdpr_consent`` on ``/px.gif``, ``/ad`` and ``/ad.json``.

With ``gdpr=1`` the pixel sets or refreshes the cookie and writes the profile only with consent for
purposes 1 and 3 and our vendor; an ad is chosen from the profile only with purposes 1, 3, 4 and
our vendor, else it is the non-personalised ad opted-out visitors get. Without ``gdpr`` (or
``gdpr=0``) nothing changes. The strings are built per case by ``tests/tcf.py``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from adserver.console.report import ReportRequest, run_report
from adserver.tracking.pixel import GIF
from tests import tcf
from tests.adserver.conftest import visitor_uid
from tests.adserver.serving.test_ads import AdPage, view
from tests.conftest import drain
from tracker.consent import CONSENT_GIVEN, CONSENT_MISSING, CONSENT_NOT_APPLICABLE
from tracker.hides import counts_key, hide_key
from tracker.stream import utc_day

pytestmark = pytest.mark.settings_env(ADSERVER_TCF_VENDOR_ID=str(tcf.VENDOR))

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
BROWSER = {"User-Agent": CHROME}
PROFILE_AND_ADS = tcf.FULL
PROFILE_ONLY = tcf.tc_string(purposes=[1, 2, 3, 7])  # a profile may be built, not used to choose ads

# (name, query suffix, cookie and profile allowed, personalised ad allowed)
CASES = [
    ("no_gdpr", "", True, True),
    ("gdpr_0", "&gdpr=0&gdpr_consent=" + tcf.MALFORMED, True, True),
    ("full_consent", "&gdpr=1&gdpr_consent=" + PROFILE_AND_ADS, True, True),
    ("range_encoded", "&gdpr=1&gdpr_consent=" + tcf.tc_string(use_ranges=True), True, True),
    ("purposes_1_3_not_4", "&gdpr=1&gdpr_consent=" + PROFILE_ONLY, True, False),
    ("no_purpose_1", "&gdpr=1&gdpr_consent=" + tcf.NO_PURPOSE_1, False, False),
    ("purpose_1_not_3_4", "&gdpr=1&gdpr_consent=" + tcf.ONLY_PURPOSE_1, False, False),
    ("not_our_vendor", "&gdpr=1&gdpr_consent=" + tcf.NO_VENDOR, False, False),
    ("malformed", "&gdpr=1&gdpr_consent=" + quote(tcf.MALFORMED), False, False),
    ("oversized", "&gdpr=1&gdpr_consent=" + tcf.FULL + "A" * 5000, False, False),
    ("gdpr_without_string", "&gdpr=1", False, False),
    ("unexpanded_macros", "&gdpr=${GDPR}&gdpr_consent=${GDPR_CONSENT_755}", False, False),
]
IDS = [case[0] for case in CASES]


def _set_cookies(response) -> list[str]:
    return [v for k, v in response.headers.items() if k.lower() == "set-cookie" and v.startswith("uid=")]


def _profile_keys(redis_client, uid: str) -> list:
    return redis_client.keys("p:*}:%s:*" % uid)


@pytest.mark.parametrize(("name", "suffix", "profile", "personalised"), CASES, ids=IDS)
def test_pixel(app, demo_loaded, settings, redis_client, writer, ch, name, suffix, profile, personalised):
    visitor = app.test_client()
    response = visitor.get("/px.gif?a=demo&e=view_item&sku=D1030" + suffix, headers=BROWSER)
    assert (response.status_code, response.mimetype, response.data) == (200, "image/gif", GIF)
    assert bool(_set_cookies(response)) is profile
    if not profile:
        assert visitor.get_cookie("uid") is None
        assert redis_client.xlen(settings.stream_key) == 0  # nothing recorded, not even anonymously
        return
    uid = visitor_uid(visitor)
    assert _profile_keys(redis_client, uid)
    drain(writer)
    applies = "gdpr=1" in suffix
    assert ch.execute("SELECT uid, sku, consent FROM events WHERE event = 'view_item'") == [
        (uid, "D1030", CONSENT_GIVEN if applies else CONSENT_NOT_APPLICABLE)]


def test_pixel_without_consent_neither_refreshes_the_cookie_nor_updates_the_profile(app, demo_loaded, redis_client,
                                                                                     settings):
    visitor = app.test_client()
    view(visitor, "D1030")
    uid = visitor_uid(visitor)
    before = {key: redis_client.dump(key) for key in _profile_keys(redis_client, uid)}
    entries = redis_client.xlen(settings.stream_key)
    for text in (tcf.NO_PURPOSE_1, tcf.NO_VENDOR, tcf.MALFORMED):
        response = visitor.get(f"/px.gif?a=demo&e=view_item&sku=D1031&gdpr=1&gdpr_consent={quote(text)}",
                               headers=BROWSER)
        assert response.status_code == 200 and response.data == GIF
        assert not _set_cookies(response)
    assert {key: redis_client.dump(key) for key in _profile_keys(redis_client, uid)} == before
    assert redis_client.xlen(settings.stream_key) == entries
    # the same browser consenting again is tracked again, under the id it had
    response = visitor.get(f"/px.gif?a=demo&e=view_item&sku=D1031&gdpr=1&gdpr_consent={tcf.FULL}", headers=BROWSER)
    assert _set_cookies(response) and visitor_uid(visitor) == uid
    assert redis_client.xlen(settings.stream_key) == entries + 1


@pytest.mark.parametrize(("name", "suffix", "profile", "personalised"), CASES, ids=IDS)
def test_ad_json(app, demo_loaded, writer, ch, name, suffix, profile, personalised):
    visitor = app.test_client()
    view(visitor, "D1030", "D1031")  # a profile built before (outside the EU, or with consent)
    uid = visitor_uid(visitor)
    response = visitor.get("/ad.json?p=demo-feed&size=300x250" + suffix, headers=BROWSER)
    assert response.status_code == 200
    decision = response.get_json()
    reasons = {p["reason"] for p in decision["products"]}
    if personalised:
        assert decision["path"] == "personalised" and decision["addressable"] is True
        assert [p["sku"] for p in decision["products"]][:2] == ["D1031", "D1030"] and "recent" in reasons
    else:
        assert decision["path"] == "fallback" and decision["addressable"] is False
        assert decision["fallback_reason"] == "no_consent"
        assert reasons == {"popular"} and len(decision["products"]) == 4
    drain(writer)
    applies = "gdpr=1" in suffix or "${GDPR}" in suffix
    expected = CONSENT_NOT_APPLICABLE if not applies else CONSENT_GIVEN if personalised else CONSENT_MISSING
    assert ch.execute("SELECT uid, addressable, consent FROM events WHERE event = 'impression'") == [
        (uid if personalised else "", int(personalised), expected)]


@pytest.mark.parametrize(("name", "suffix", "profile", "personalised"),
                         [c for c in CASES if c[0] in ("no_gdpr", "full_consent", "purposes_1_3_not_4", "no_purpose_1",
                                                       "not_our_vendor", "malformed", "oversized")],
                         ids=lambda v: v if isinstance(v, str) and not v.startswith("&") else "")
def test_ad_html(app, demo_loaded, writer, ch, name, suffix, profile, personalised):
    visitor = app.test_client()
    view(visitor, "D1030", "D1031")
    response = visitor.get("/ad?p=demo-feed&size=300x250" + suffix, headers=BROWSER)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert len([a for a in AdPage(response.get_data(as_text=True)).attrs_of("a") if "/c/" in a["href"]]) == 4
    drain(writer)
    [(skus, reasons, uid)] = ch.execute("SELECT skus, reasons, uid FROM events WHERE event = 'impression'")
    if personalised:
        assert skus[:2] == ["D1031", "D1030"] and reasons[0] == "recent" and uid == visitor_uid(visitor)
    else:
        assert set(reasons) == {"popular"} and uid == ""


@pytest.mark.parametrize("query", [
    "gdpr=1&gdpr=0&gdpr_consent=" + tcf.FULL[:10],  # the first value counts, as for every parameter
    "gdpr=%FF%FE&gdpr_consent=%C3%28",
    "gdpr=1&gdpr_consent=" + "%00" * 100,
    "gdpr=1&gdpr_consent=" + "C" * 100_000,
    "gdpr=1&gdpr_consent=" + tcf.FULL[:-4] + "%E2%82%AC%E2%82%AC",
    "gdpr=1&gdpr_consent[]=" + tcf.FULL,
    "gdpr=" + "1" * 5000,
])
def test_hostile_consent_parameters_get_a_safe_answer(app, demo_loaded, settings, redis_client, query):
    visitor = app.test_client()
    view(visitor, "D1030", "D1031")
    entries = redis_client.xlen(settings.stream_key)
    pixel = visitor.get("/px.gif?a=demo&e=view_item&sku=D1032&" + query, headers=BROWSER)
    assert (pixel.status_code, pixel.data) == (200, GIF) and not _set_cookies(pixel)
    assert redis_client.xlen(settings.stream_key) == entries
    for path in ("/ad.json", "/ad"):
        response = visitor.get(f"{path}?p=demo-feed&size=300x250&{query}", headers=BROWSER)
        assert response.status_code == 200
    decision = visitor.get("/ad.json?p=demo-feed&size=300x250&" + query, headers=BROWSER).get_json()
    assert decision["path"] == "fallback" and decision["fallback_reason"] == "no_consent"
    debug = visitor.get("/px/debug?a=demo&e=view_item&sku=D1032&" + query).get_json()
    assert debug["consent"]["gdpr_applies"] and not debug["consent"]["personalised"]


def test_debug_endpoint_explains_the_consent(client, demo_loaded):
    body = client.get(f"/px/debug?a=demo&e=view_item&sku=D1030&gdpr=1&gdpr_consent={PROFILE_ONLY}").get_json()
    assert body["ok"] and body["consent"] == {"gdpr_applies": True, "valid": True, "profile": True,
                                              "personalised": False}
    body = client.get("/px/debug?a=demo&e=view_item&sku=D1030").get_json()
    assert body["consent"] == {"gdpr_applies": False, "valid": False, "profile": True, "personalised": True}


@pytest.mark.settings_env(ADSERVER_TCF_VENDOR_ID="0")
def test_without_a_vendor_id_gdpr_visitors_are_never_tracked(app, demo_loaded):
    visitor = app.test_client()
    response = visitor.get(f"/px.gif?a=demo&e=view_item&sku=D1030&gdpr=1&gdpr_consent={tcf.FULL}", headers=BROWSER)
    assert response.data == GIF and not _set_cookies(response)
    assert visitor.get("/px.gif?a=demo&e=view_item&sku=D1030", headers=BROWSER).headers.get("Set-Cookie")


def test_reports_show_the_consent_share(app, demo_loaded, writer, ch):
    """Two ads without gdpr, three with consent, one without: a consent share of 3 / 4, on every breakdown of ads."""
    visitor = app.test_client()
    view(visitor, "D1030")
    for suffix in ("", "", *(f"&gdpr=1&gdpr_consent={tcf.FULL}",) * 3, f"&gdpr=1&gdpr_consent={tcf.NO_VENDOR}"):
        assert visitor.get("/ad.json?p=demo-feed&size=300x250" + suffix, headers=BROWSER).status_code == 200
    drain(writer)
    today = datetime.now(UTC).date()
    for source in ("agg", "raw"):
        for group_by in ("day", "placement", "campaign"):
            report = run_report(ch, ReportRequest("demo", today, today, group_by), source=source)
            totals = report.totals
            assert (totals.impressions, totals.gdpr_impressions, totals.consented_impressions) == (6, 4, 3)
            assert totals.consent_share == 0.75 and totals.addressable_share == 5 / 6
            assert sum(r.gdpr_impressions for r in report.rows) == 4
            assert totals.as_dict()["consent_share"] == 0.75
        products = run_report(ch, ReportRequest("demo", today, today, "sku"), source=source)
        assert {(r.gdpr_impressions, r.consent_share) for r in products.rows} == {(None, None)}


# --- clicks and "not interested" answers follow the consent of their ad ---------------------------------------
# Neither request carries gdpr parameters: the ad's consent state is signed into its click and hide tokens.

NO_CONSENT = "&gdpr=1&gdpr_consent=" + tcf.NO_VENDOR
CONSENTED = "&gdpr=1&gdpr_consent=" + tcf.FULL


def _ad_with_profile(app, suffix: str):
    visitor = app.test_client()
    view(visitor, "D1030", "D1031")
    response = visitor.get("/ad.json?p=demo-feed&size=300x250" + suffix, headers=BROWSER)
    assert response.status_code == 200
    return visitor, response.get_json()


@pytest.mark.parametrize(("suffix", "identified", "code"), [
    ("", True, CONSENT_NOT_APPLICABLE), (CONSENTED, True, CONSENT_GIVEN), (NO_CONSENT, False, CONSENT_MISSING),
    ("&gdpr=1", False, CONSENT_MISSING)], ids=["no_gdpr", "consent", "refused", "no_string"])
def test_a_click_reads_the_cookie_only_if_its_ad_could(app, demo_loaded, writer, ch, suffix, identified, code):
    visitor, decision = _ad_with_profile(app, suffix)
    uid = visitor_uid(visitor)
    click = visitor.get(urlsplit(decision["products"][0]["click_url"]).path, headers=BROWSER)
    assert click.status_code == 302 and not _set_cookies(click)
    click_id = parse_qs(urlsplit(click.headers["Location"]).query)["adclid"][0]
    ref = app.extensions["adserver"].click_ids.verify("demo", click_id)
    assert ref.uid == (uid if identified else "")  # the store's conversions cannot be joined to the visitor
    drain(writer)
    assert ch.execute("SELECT uid, addressable, consent FROM events WHERE event = 'click'") == [
        (uid if identified else "", int(identified), code)]


def test_click_tokens_keep_their_length_and_older_layouts_still_verify(app):
    from adserver.serving.clicks import CONSENT_UNKNOWN, ClickTokens, InvalidToken
    from tracker.signing import Signer, b64decode, b64encode

    keys = ["a-key-of-thirty-two-characters!!"]
    tokens = ClickTokens(keys, 600)
    impression = "AAAAAAAAAAAAAAAA"
    tokens_by_consent = {code: tokens.issue(impression, "demo", "demo-feed", "D1", "similar", now=1000,
                                            campaign="c", consent=code)
                         for code in (CONSENT_NOT_APPLICABLE, CONSENT_GIVEN, CONSENT_MISSING)}
    for code, token in tokens_by_consent.items():
        click = tokens.verify(token, now=1100)
        assert (click.reason, click.campaign, click.consent) == ("similar", "c", code)
        assert click.may_identify is (code != CONSENT_MISSING)
    signer = Signer(keys, "click")
    for version, fields in ((2, b"demo\x00demo-feed\x00D1\x00c"), (1, b"demo\x00demo-feed\x00D1")):
        body = bytes([version]) + (1600).to_bytes(4, "big") + bytes([1]) + b64decode(impression) + fields
        old = b64encode(body + signer.mac(body))
        assert len(old) <= len(tokens_by_consent[CONSENT_MISSING])  # the consent state costs no length
        click = tokens.verify(old, now=1100)
        assert (click.sku, click.reason, click.consent, click.may_identify) == ("D1", "similar", CONSENT_UNKNOWN, True)
    # A consent state we never issue, even signed, is refused; so is any change to a signed one.
    body = bytes([3]) + (1600).to_bytes(4, "big") + bytes([3 << 4 | 1]) + b64decode(impression) + b"d\x00p\x00s\x00"
    with pytest.raises(InvalidToken):
        tokens.verify(b64encode(body + signer.mac(body)), now=1100)
    raw = bytearray(b64decode(tokens_by_consent[CONSENT_MISSING]))
    raw[5] &= 0x0F  # "missing" turned into "not applicable"
    with pytest.raises(InvalidToken):
        tokens.verify(b64encode(bytes(raw)), now=1100)
    with pytest.raises(ValueError):
        tokens.issue(impression, "demo", "demo-feed", "D1", "recent", consent=7)


@pytest.mark.parametrize(("suffix", "kept"), [("", True), (CONSENTED, True), (NO_CONSENT, False)],
                         ids=["no_gdpr", "consent", "refused"])
def test_an_answer_is_kept_for_the_visitor_only_if_its_ad_could_read_the_cookie(
        app, demo_loaded, writer, ch, redis_client, suffix, kept):
    visitor, decision = _ad_with_profile(app, suffix)
    uid = visitor_uid(visitor)
    sku = decision["products"][0]["sku"]
    hide_url = urlsplit(decision["hide_url"])
    response = visitor.post(f"{hide_url.path}?{hide_url.query}", data={"reason": "product", "sku": sku},
                            headers=BROWSER)
    assert response.status_code == 303 and not _set_cookies(response)
    location = parse_qs(urlsplit(response.headers["Location"]).query)
    assert bool(redis_client.exists(hide_key(app.extensions["adserver"].stream.partitions, uid))) is kept
    if not kept:  # the next framed ad leaves the answer out, and stays without personal data
        assert location["gdpr"] == ["1"] and location["xs"] == [sku] and "gdpr_consent" not in location
        after = visitor.get(response.headers["Location"].replace("/ad?", "/ad.json?"), headers=BROWSER).get_json()
        assert after["fallback_reason"] == "no_consent" and sku not in [p["sku"] for p in after["products"]]
    else:
        assert "gdpr" not in location and "x" not in location
    assert redis_client.zscore(counts_key("demo", utc_day(time.time())), sku) == 1  # counted either way
    drain(writer)
    expected = (uid if kept else "", [sku], CONSENT_MISSING if not kept else int(bool(suffix)))
    assert ch.execute("SELECT uid, skus, consent FROM events WHERE event = 'hide'") == [expected]


def test_hide_tokens_without_a_consent_state_still_verify(app):
    from adserver.serving.hide_tokens import HideTokens
    from tracker.signing import Signer, b64decode, b64encode

    keys = ["a-key-of-thirty-two-characters!!"]
    tokens = HideTokens(keys, 600)
    body = bytes([1]) + (1600).to_bytes(4, "big") + b64decode("AAAAAAAAAAAAAAAA") + b"demo\x00demo-feed\x00\x00D1"
    info = tokens.verify(b64encode(body + Signer(keys, "hide").mac(body)), now=1100)
    assert (info.skus, info.consent, info.may_identify) == (("D1",), CONSENT_NOT_APPLICABLE, True)
    refused = tokens.verify(tokens.issue("AAAAAAAAAAAAAAAA", "demo", "demo-feed", ["D1"], now=1000,
                                         consent=CONSENT_MISSING), now=1100)
    assert (refused.skus, refused.consent, refused.may_identify) == (("D1",), CONSENT_MISSING, False)
    with pytest.raises(ValueError):
        tokens.issue("AAAAAAAAAAAAAAAA", "demo", "demo-feed", ["D1"], consent=9)
