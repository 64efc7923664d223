"""The TC string decoder and the verdict it gives: real strings published by the IAB, and strings built per case."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests import tcf
from tracker import consent
from tracker.consent import (
    CONSENT_GIVEN,
    CONSENT_MISSING,
    CONSENT_NOT_APPLICABLE,
    MAX_LENGTH,
    RESTRICTION_NOT_ALLOWED,
    RESTRICTION_REQUIRE_CONSENT,
    RESTRICTION_REQUIRE_LI,
    decode,
    verdict,
)

# Strings and their decoded values from the IAB Tech Lab's Java decoder tests (iabtcf-java,
# TCStringV2Test), made with the IAB's encoder.
IAB_CORE = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA"
IAB_BITFIELD = ("COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA"
                ".IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA.cAAAAAAAITg=")
IAB_RANGE_2 = "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA"
IAB_RANGE_1 = "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAQFfgUbABAUaAAA"
IAB_RANGE_LI = "COv__-wOv__-wC2AAAENAPCgAAAAAAAAAAAAA_wAQA_gEBABAEAAAA"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_iab_core_fields():
    tc = decode(IAB_CORE)
    assert tc is not None
    assert (tc.version, tc.cmp_id, tc.cmp_version, tc.consent_screen) == (2, 675, 2, 1)
    assert _utc(tc.created) == datetime(2020, 1, 26, 17, 1, tzinfo=UTC)
    assert _utc(tc.last_updated) == datetime(2021, 2, 2, 17, 1, tzinfo=UTC)
    assert (tc.vendor_list_version, tc.policy_version, tc.consent_language, tc.publisher_cc) == (15, 2, "EN", "AA")
    assert not tc.service_specific and tc.purpose_one_treatment and not tc.use_non_standard_texts
    assert tc.special_feature_opt_ins == {1}
    assert tc.purposes_consent == {2, 10} and tc.purposes_li_transparency == {2, 9}


def test_iab_bitfield_vendors_and_later_segments_skipped():
    tc = decode(IAB_BITFIELD)
    assert tc.purposes_consent == {3, 4, 5, 6, 7, 8, 9}
    assert tc.vendor_consents.ids() == {23, 37, 47, 48, 53, 65, 98}
    assert tc.vendor_legitimate_interests.ids() == {37, 47, 48, 53, 65, 98, 129}
    assert decode(IAB_BITFIELD.split(".")[0]) == tc


def test_iab_range_vendors():
    assert decode(IAB_RANGE_2).vendor_consents.ids() == {702, 703}
    assert decode(IAB_RANGE_1).vendor_consents.ids() == {703}
    assert decode(IAB_RANGE_LI).vendor_legitimate_interests.ids() == {128}


def test_built_string_round_trips_every_field():
    text = tcf.tc_string(purposes=[1, 3, 4], vendors=[5, 6, 7, tcf.VENDOR], li_vendors=[9], special_features=[2],
                         cmp_id=42, language="DE", publisher_cc="IT",
                         restrictions=[(7, RESTRICTION_NOT_ALLOWED, [(1, 10)])])
    tc = decode(text)
    assert (tc.version, tc.policy_version, tc.cmp_id, tc.cmp_version, tc.consent_screen) == (2, 4, 42, 7, 1)
    assert tc.created == tcf.DECISECONDS / 10 and tc.last_updated == tc.created + 60
    assert (tc.consent_language, tc.publisher_cc, tc.vendor_list_version) == ("DE", "IT", 48)
    assert tc.purposes_consent == {1, 3, 4} and tc.purposes_li_transparency == {2, 7}
    assert tc.special_feature_opt_ins == {2}
    assert tc.vendor_consents.ids() == {5, 6, 7, tcf.VENDOR} and tc.vendor_consents.max_vendor_id == tcf.VENDOR
    assert tc.vendor_legitimate_interests.ids() == {9}
    assert len(tc.restrictions) == 1 and tc.restrictions[0].purpose == 7 and 3 in tc.restrictions[0].vendors


@pytest.mark.parametrize("use_ranges", [False, True])
def test_bitfield_and_range_encodings_agree(use_ranges):
    vendors = [1, 2, 3, 10, 500, 501, 502, tcf.VENDOR]
    tc = decode(tcf.tc_string(vendors=vendors, use_ranges=use_ranges))
    assert tc.vendor_consents.ids() == set(vendors)
    assert tcf.VENDOR in tc.vendor_consents and 4 not in tc.vendor_consents and 0 not in tc.vendor_consents


@pytest.mark.parametrize(("text", "profile", "personalised"), [
    (tcf.FULL, True, True),
    (tcf.NO_PURPOSE_1, False, False),
    (tcf.ONLY_PURPOSE_1, False, False),
    (tcf.tc_string(purposes=[1, 3]), True, False),  # a profile may be built, not used to choose ads
    (tcf.tc_string(purposes=[3, 4]), False, False),
    (tcf.NO_VENDOR, False, False),
    (tcf.tc_string(vendors=[], li_vendors=[tcf.VENDOR]), False, False),  # legitimate interest is not consent
    (tcf.tc_string(li_purposes=[1, 3, 4], purposes=[2]), False, False),
    (tcf.tc_string(use_ranges=True), True, True),
])
def test_verdict_by_purposes_and_vendor(text, profile, personalised):
    result = verdict("1", text, tcf.VENDOR)
    assert result.applies and (result.profile, result.personalised) == (profile, personalised)
    assert result.code == (CONSENT_GIVEN if personalised else CONSENT_MISSING)
    assert result.profile_code == (CONSENT_GIVEN if profile else CONSENT_MISSING)


@pytest.mark.parametrize(("kind", "vendors", "allowed"), [
    (RESTRICTION_NOT_ALLOWED, [(tcf.VENDOR, tcf.VENDOR)], False),
    (RESTRICTION_NOT_ALLOWED, [(1, tcf.VENDOR - 1)], True),  # another vendor restricted
    (RESTRICTION_REQUIRE_LI, [(1, 60000)], False),  # purpose 4 cannot rest on legitimate interest
    (RESTRICTION_REQUIRE_CONSENT, [(1, 60000)], True),
])
def test_publisher_restrictions(kind, vendors, allowed):
    result = verdict("1", tcf.tc_string(restrictions=[(4, kind, vendors)]), tcf.VENDOR)
    assert result.profile and result.personalised is allowed


def test_gdpr_flag():
    assert verdict(None, None, tcf.VENDOR).code == CONSENT_NOT_APPLICABLE
    assert verdict("0", "garbage", tcf.VENDOR) == consent.NOT_APPLICABLE
    assert verdict("", tcf.FULL, tcf.VENDOR).personalised
    for unreadable in ("1", "${GDPR}", "yes", "2", " 1 "):
        assert verdict(unreadable, None, tcf.VENDOR) == consent.REFUSED
    assert verdict("${GDPR}", tcf.FULL, tcf.VENDOR).personalised


def test_vendor_not_configured_never_consents():
    assert verdict("1", tcf.FULL, 0) == consent.REFUSED


@pytest.mark.parametrize("text", [
    None, "", 42, tcf.MALFORMED, "====", "A", "C", tcf.FULL[:20], tcf.FULL[:-3], "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA",
    tcf.tc_string(version=1), tcf.tc_string(version=3), "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA\x00",
    tcf.OVERSIZED, "C" * (MAX_LENGTH + 1), tcf.FULL + "=" * 3 + "A",
    # absurd sizes: MaxVendorId 65535 with a bit field that is not there; a range past MaxVendorId; a
    # range ending before it starts; 4095 range entries announced and none present
    tcf.core(vendors=[1], max_vendor_id=65535).encode()[:60],
    tcf.core(vendors=[]).encode()[:36] + "AAAA",
])
def test_malformed_is_no_consent(text):
    assert decode(text) is None
    assert verdict("1", text, tcf.VENDOR) == consent.REFUSED


def test_hostile_sections_are_refused():
    absurd = tcf.Bits()
    head = tcf.core(vendors=[]).text[:213]  # the fields before the vendor consent section
    for section in (
        "1" * 16 + "0",  # MaxVendorId 65535, bit field missing
        format(10, "016b") + "1" + format(1, "012b") + "1" + format(5, "016b") + format(20, "016b"),  # past max
        format(30, "016b") + "1" + format(1, "012b") + "1" + format(20, "016b") + format(5, "016b"),  # end < start
        format(30, "016b") + "1" + "1" * 12,  # 4095 entries announced, none present
        format(30, "016b") + "1" + format(1, "012b") + "0" + "0" * 16,  # vendor id 0
    ):
        absurd.text = head + section + "0" * 17 + "0" * 12
        assert decode(absurd.encode()) is None, section


def test_padding_and_optional_segments_accepted():
    assert decode(tcf.FULL + "==") == decode(tcf.FULL)
    assert decode(tcf.FULL + ".IBAgAAAgAIAwgAgAAAAEAAAACA") == decode(tcf.FULL)
    assert decode(tcf.FULL + ".!!not-even-base64") == decode(tcf.FULL)  # never read


def test_large_but_valid_bitfield():
    vendors = list(range(1, 3000, 3)) + [tcf.VENDOR]
    text = tcf.tc_string(vendors=vendors)
    assert len(text) < MAX_LENGTH
    assert verdict("1", text, tcf.VENDOR).personalised
    assert decode(text).vendor_consents.ids() == set(vendors)
