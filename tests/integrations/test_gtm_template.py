"""The Google Tag Manager template for the store tag (``integrations/gtm/template.tpl``).

Read as GTM reads an exported template: its sections, fields and permissions (pixels only to the
ad server's origin, only the ``ecommerce`` key of the data layer). Then its sandboxed code runs in
Chromium with a stand-in for GTM's sandbox APIs and permission checks (``gtm_sandbox.js``), on a
store page that also carries ``tag.js``: for the same inputs, both send the very same ``/px.gif``
URL (only the random cache buster differs), the app answers each with its GIF, and the events
stored are the ones the inputs describe, GA4 data-layer pushes included.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections import Counter
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from werkzeug.serving import make_server

from tests.conftest import drain
from tests.integrations.gtm import PLACEHOLDER_ORIGIN, SANDBOX_JS, TEMPLATE, load, split_sections
from tests.test_browser_e2e import _browser, playwright  # noqa: F401 - fixture and helper
from tracker.events import ADVERTISER_RE, STORE_EVENTS

# The sandbox APIs the template may require, and the permission each needs (None: needs none).
SANDBOX_APIS = {
    "sendPixel": "send_pixel", "copyFromDataLayer": "read_data_layer", "getUrl": "get_url",
    "getReferrerUrl": "get_referrer", "logToConsole": "logging", "encodeUriComponent": None,
    "makeString": None, "getType": None, "generateRandom": None,
}


def test_sections_are_those_of_a_gtm_export():
    sections = split_sections(TEMPLATE.read_text(encoding="utf-8"))
    assert list(sections) == ["TERMS_OF_SERVICE", "INFO", "TEMPLATE_PARAMETERS", "SANDBOXED_JS_FOR_WEB_TEMPLATE",
                              "WEB_PERMISSIONS", "TESTS", "NOTES"]
    template = load()
    assert template.info["type"] == "TAG" and template.info["containerContexts"] == ["WEB"]
    assert template.info["displayName"] and template.info["description"]


def test_fields():
    fields = load().fields()
    assert set(fields) == {"origin", "advertiser", "event", "sku", "useEcommerce", "order", "value", "currency"}
    event = fields["event"]
    assert event["type"] == "SELECT" and event["macrosInSelect"] is True  # {{Event}} may be chosen
    assert {item["value"] for item in event["selectItems"]} == STORE_EVENTS
    assert fields["useEcommerce"]["type"] == "CHECKBOX" and fields["useEcommerce"]["defaultValue"] is True
    assert fields["origin"]["defaultValue"] == PLACEHOLDER_ORIGIN


def _regex(field: dict) -> re.Pattern:
    """The field's REGEX validator, read as JavaScript reads it (its ``$`` ends the text, no newline allowed)."""
    [pattern] = [v["args"][0] for v in field["valueValidators"] if v["type"] == "REGEX"]
    assert pattern.startswith("^") and pattern.endswith("$")
    return re.compile(pattern[:-1] + r"\Z")


@pytest.mark.parametrize("value", ["shop", "a", "demo_2-x", "a" * 64, "Shop", "", "-shop", "a" * 65, "sh op",
                                   "shop\n", "商店"])
def test_advertiser_field_accepts_what_the_pixel_accepts(value):
    assert bool(_regex(load().fields()["advertiser"]).search(value)) == bool(ADVERTISER_RE.match(value))


@pytest.mark.parametrize(("value", "ok"), [
    ("https://ads.example", True), ("https://ads.example.com/", True), ("https://ads.example:8443", True),
    ("http://ads.example", False), ("https://ads.example/px.gif", False), ("https://ads.example?x=1", False),
    ("javascript:alert(1)", False), ("https://user@ads.example", False), ("", False),
])
def test_origin_field_takes_an_https_origin_only(value, ok):
    assert bool(_regex(load().fields()["origin"]).search(value)) is ok


def test_permissions_allow_only_our_origin_and_the_ecommerce_key():
    template = load()
    permissions = template.permissions()
    assert permissions == {
        "send_pixel": {"allowedUrls": "specific", "urls": [PLACEHOLDER_ORIGIN + "/"]},
        "read_data_layer": {"allowedKeys": "specific", "keyPatterns": ["ecommerce"]},
        "get_url": {"urlParts": "any", "queriesAllowed": "any"},  # tag.js sends the whole page URL
        "get_referrer": {"urlParts": "any", "queriesAllowed": "any"},
        "logging": {"environments": "debug"},  # preview mode only
    }
    # Installed for another ad server, the template allows that origin and no longer the placeholder.
    installed = load("https://ads.shop-cdn.net").permissions()["send_pixel"]["urls"]
    assert installed == ["https://ads.shop-cdn.net/"]


def test_code_uses_only_sandbox_apis_each_with_its_permission():
    template = load()
    code = re.sub(r"//[^\n]*", "", template.code)
    required = re.findall(r"require\('([^']+)'\)", code)
    assert len(required) == len(set(required)) and set(required) <= set(SANDBOX_APIS), required
    needed = {SANDBOX_APIS[api] for api in required} - {None}
    assert needed == set(template.permissions())  # no permission unused, none missing
    # What GTM's sandbox does not have: the page's globals, constructors, `this`, typeof, regex literals.
    for forbidden in (r"\bwindow\b", r"\bdocument\b", r"\blocation\b", r"\bnew\b", r"\bthis\b", r"\btypeof\b",
                      r"\bMath\b", r"\bJSON\b", r"\bObject\b", r"\bString\(", r"encodeURI", r"\bfor\s*\([^)]*\bof\b",
                      r"[=(,]\s*/[^/*]"):
        assert not re.search(forbidden, code), forbidden


def test_placeholder_origin_is_only_the_default_and_the_permission():
    template = load()
    sections = {name: body for name, body in template.sections.items() if name not in ("TESTS", "NOTES")}
    where = {name for name, body in sections.items() if PLACEHOLDER_ORIGIN in body}
    assert where == {"TEMPLATE_PARAMETERS", "WEB_PERMISSIONS"}
    assert "ads.example" not in template.code


@pytest.fixture
def shop(app, runner, tmp_path):
    """The app on ``https://ads.test:<port>`` and a store page carrying tag.js on ``store.test``."""
    assert runner("create-advertiser", "shop", "--domain", "store.test")[0] == 0
    app.extensions["adserver"].registry.reload()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ads.test",
                    "-addext", "subjectAltName=DNS:ads.test,DNS:store.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    page: dict[str, bytes] = {}

    def dispatch(environ, start_response):
        if environ.get("HTTP_HOST", "").split(":")[0] != "store.test":
            return app(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")])
        return [page["html"]]

    httpd = make_server("127.0.0.1", 0, dispatch, threaded=True, ssl_context=(str(cert), str(key)))
    origin = f"https://ads.test:{httpd.server_port}"
    page["html"] = (f'<!doctype html><meta charset=utf-8><title>store</title>'
                    f'<script async src="{origin}/tag.js" data-advertiser="shop"></script>').encode()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"origin": origin, "store": f"https://store.test:{httpd.server_port}"}
    httpd.shutdown()
    thread.join(timeout=10)


# Each case: what the page gives tag.js, what the GTM tag is configured with, and the data-layer
# pushes before it fires (GA4 clears `ecommerce` before each event). JavaScript source, so inputs
# JSON cannot carry (a lone surrogate) reach the page intact. ``row``: the event both hits must store.
LONG_SKUS = (r"['Z\ud800Y', '\u8336'.repeat(150)]"
             r".concat(Array.from({length: 80}, (_, i) => 'SKU-' + i + '-' + 'x'.repeat(40)))")
CASES = [
    (r"{tag: {event: 'view_item', sku: 'T1'}, gtm: {event: 'view_item', sku: 'T1', useEcommerce: true},"
     r" layer: [{ecommerce: null}]}",
     ("view_item", ("T1",), "", 0.0, "")),
    (r"{tag: {event: 'add_to_cart', sku: ['A&B', 'C#1', '\u9752\u74f7=1', ' D+2 ']},"
     r" gtm: {event: 'add_to_cart', sku: ['A&B', 'C#1', '\u9752\u74f7=1', ' D+2 '], useEcommerce: false}, layer: []}",
     ("add_to_cart", ("A&B", "C#1", "青瓷=1", "D+2"), "", 0.0, "")),
    (r"{tag: {event: 'add_to_cart', sku: 'E%1, F?2 ,\ud83d\ude00/3'},"
     r" gtm: {event: 'add_to_cart', sku: 'E%1, F?2 ,\ud83d\ude00/3', useEcommerce: true}, layer: [{ecommerce: null}]}",
     ("add_to_cart", ("E%1", "F?2", "\U0001f600/3"), "", 0.0, "")),
    (r"{tag: {event: 'purchase', sku: ['T1', '\u9752\u74f7#2'], order: 'O-1&#2', value: 88.5, currency: 'CNY'},"
     r" gtm: {event: 'purchase', useEcommerce: true},"
     r" layer: [{ecommerce: null}, {event: 'purchase', ecommerce: {transaction_id: 'O-1&#2', value: 88.5,"
     r" currency: 'CNY', items: [{item_id: 'T1', item_name: 'Cup', quantity: 2}, {item_id: '\u9752\u74f7#2'},"
     r" {item_name: 'no id'}]}}]}",
     ("purchase", ("T1", "青瓷#2"), "O-1&#2", 88.5, "CNY")),
    (r"{tag: {event: 'view_item', sku: ['R1'], value: 12, currency: 'EUR'}, gtm: {event: 'view_item', useEcommerce: true},"
     r" layer: [{ecommerce: null}, {event: 'view_item', ecommerce: {currency: 'EUR', value: 12, items: [{item_id: 'R1'}]}}]}",
     ("view_item", ("R1",), "", 12.0, "EUR")),
    (r"{tag: {event: 'add_to_cart', sku: ['R2'], value: 5, currency: 'EUR'},"
     r" gtm: {event: 'add_to_cart', currency: 'EUR', useEcommerce: true},"
     r" layer: [{ecommerce: null}, {event: 'add_to_cart', ecommerce: {currency: 'USD', value: 5, items: [{item_id: 'R2'}]}}]}",
     ("add_to_cart", ("R2",), "", 5.0, "EUR")),
    (r"{tag: {event: 'view_cart'}, gtm: {event: 'view_cart', useEcommerce: false},"
     r" layer: [{ecommerce: {value: 7, currency: 'CNY', items: [{item_id: 'R3'}]}}]}",
     ("view_cart", (), "", 0.0, "")),
    (r"{tag: {event: 'view_list', sku: ['T1', 'T2']}, gtm: {event: 'view_item_list', useEcommerce: true},"
     r" layer: [{ecommerce: null}, {event: 'view_item_list', ecommerce: {items: [{item_id: 'T1'}, {item_id: 'T2'}]}}]}",
     ("view_list", ("T1", "T2"), "", 0.0, "")),
    # Over every limit: 80 SKUs (cut to 1000 bytes), one of 1,350 bytes (cut to whole characters
    # within 300), a lone surrogate (left out); its stored row is checked below.
    (f"{{tag: {{event: 'view_home', sku: {LONG_SKUS}}},"
     f" gtm: {{event: 'view_home', sku: {LONG_SKUS}, useEcommerce: true}}, layer: []}}",
     None),
]


def _without_cache_buster(url: str) -> str:
    stripped, count = re.subn(r"&cb=[0-9a-z]+$", "", url)
    assert count == 1, url
    return stripped


@pytest.mark.slow
def test_template_sends_what_tag_js_sends(shop, playwright, tmp_path, writer, ch):  # noqa: F811 - imported fixture
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    template = load(shop["origin"])
    # A long page URL with multi-byte characters: both cut the url parameter at the same character.
    page.goto(f"{shop['store']}/p/1?q=" + "茶" * 200 + "&x=a%26b", referer="https://search.example/?q=tea&x=1")
    page.wait_for_function("window.adserver && window.adserver.loaded")
    page.add_script_tag(content=SANDBOX_JS.read_text(encoding="utf-8"))
    responses = []
    for source, _ in CASES:
        page.evaluate(f"window.currentCase = ({source})")
        with page.expect_response(lambda r: "/px.gif" in r.url) as tag_hit:
            page.evaluate("adserver.push(window.currentCase.tag)")
        page.evaluate("window.dataLayer = (window.dataLayer || []).concat(window.currentCase.layer)")
        with page.expect_response(lambda r: "/px.gif" in r.url) as gtm_hit:
            result = page.evaluate(
                "([code, perms, origin]) => gtmSandbox.run(code, Object.assign({origin: origin, advertiser: 'shop'},"
                " window.currentCase.gtm), perms)", [template.code, template.sandbox_permissions(), shop["origin"]])
        assert result["ok"] is True and result["error"] is None, result
        tag_url, gtm_url = tag_hit.value.url, gtm_hit.value.url
        assert _without_cache_buster(gtm_url) == _without_cache_buster(tag_url), source
        assert gtm_url.startswith(shop["origin"] + "/px.gif?a=shop&e=")
        responses += [tag_hit.value, gtm_hit.value]
    assert not errors, errors
    for response in responses:
        assert response.status == 200 and response.headers["content-type"] == "image/gif"
    # The hostile SKUs travel percent-encoded, as tag.js encodes them.
    sent = dict(parse_qsl(urlsplit(responses[3].url).query))
    assert sent["sku"] == "A&B,C#1,青瓷=1,D+2" and "sku=A%26B%2CC%231%2C%E9%9D%92%E7%93%B7%3D1%2CD%2B2&" in responses[3].url
    context.close()

    drain(writer)
    assert ch.execute("SELECT count() FROM bad_events")[0][0] == 0
    rows = [(event, tuple(skus), *rest) for event, skus, *rest in ch.execute(
        "SELECT event, skus, order_id, value, currency, url, ref FROM events WHERE advertiser = 'shop'")]
    assert len(rows) == 2 * len(CASES)
    assert all(count == 2 for count in Counter(rows).values())  # each hit stored twice alike: tag.js and GTM
    expected = Counter({row: 2 for _, row in CASES if row})
    assert Counter(row[:5] for row in rows if row[0] != "view_home") == expected
    # The long list: whole SKUs, in order, as many as fit in 1000 encoded bytes.
    [home_skus] = {row[1] for row in rows if row[0] == "view_home"}
    longs = [f"SKU-{i}-" + "x" * 40 for i in range(80)]
    assert home_skus == ("ZY", "茶" * 33, *longs[:len(home_skus) - 2])
    sku_param = dict(parse_qsl(urlsplit(responses[-1].url).query))["sku"]
    assert len(quote(sku_param, safe="")) <= 1000 < len(quote(sku_param, safe="")) + 3 + len(longs[len(home_skus) - 2])
    assert len({row[5] for row in rows}) == 1 and rows[0][5].startswith(shop["store"] + "/p/1?q=")
    assert {row[6] for row in rows} == {"https://search.example/?q=tea&x=1"}


@pytest.mark.slow
def test_refusals_and_the_templates_own_tests(playwright, tmp_path):  # noqa: F811 - imported fixture
    """Outside its permissions the template fails the tag (no request); its ___TESTS___ pass."""
    template = load()
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=False)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.set_content("<!doctype html><title>store</title>")
    page.add_script_tag(content=SANDBOX_JS.read_text(encoding="utf-8"))
    perms = template.sandbox_permissions()
    run = "([code, data, perms]) => gtmSandbox.run(code, data, perms)"
    base = {"origin": PLACEHOLDER_ORIGIN, "advertiser": "shop", "event": "view_item", "sku": "T1", "useEcommerce": True}
    for data in ({**base, "origin": "https://evil.example"}, {**base, "origin": "https://ads.example.evil.example"},
                 {**base, "origin": "https://ads.example@evil.example"}):
        result = page.evaluate(run, [template.code, data, perms])
        assert result["ok"] is False and "send_pixel denied" in result["error"], result
    result = page.evaluate(run, [template.code, {**base, "event": ""}, perms])
    assert result == {"ok": False, "logs": ["adserver tag: no event, nothing sent"], "error": None}
    # A template wanting more of the data layer than it declares is stopped, as GTM stops it.
    greedy = template.code.replace("copyFromDataLayer('ecommerce')", "copyFromDataLayer('user')")
    result = page.evaluate(run, [greedy, base, perms])
    assert result["ok"] is False and "read_data_layer denied: user" in result["error"]
    assert not [url for url in requests if "px.gif" in url]

    setup, scenarios = template.scenarios()
    assert len(scenarios) >= 5
    outcomes = page.evaluate("([code, perms, setup, scenarios]) => gtmSandbox.runScenarios(code, perms, setup, scenarios)",
                             [template.code, perms, setup, scenarios])
    assert [o for o in outcomes if o["error"]] == [], json.dumps(outcomes, ensure_ascii=False)
    # The stand-in's assertions do fail: a scenario expecting another URL is reported.
    wrong = [{"name": "wrong", "body": scenarios[0]["body"].replace("sku=D1001", "sku=D1002")}]
    [outcome] = page.evaluate("([code, perms, setup, scenarios]) => gtmSandbox.runScenarios(code, perms, setup, scenarios)",
                              [template.code, perms, setup, wrong])
    assert outcome["error"] and "is not" in outcome["error"]
    context.close()
