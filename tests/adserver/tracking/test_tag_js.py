"""The store tag (``/static/tag.js``): what it sends, and that it never breaks the store's page.

The tag runs on other people's pages, so besides the pixel URLs it builds, these tests check that
bad input, a missing script element or a huge page URL never raise into the page and never make a
request line longer than the server accepts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

import adserver.demo

TAG = Path(adserver.demo.__file__).resolve().parent.parent / "static" / "tag.js"

# Runs tag.js in a bare VM context with just the browser objects it uses, once per scenario, and
# prints what it sent as JSON.
HARNESS = r"""
const vm = require('vm');
const fs = require('fs');
const code = fs.readFileSync(process.argv[2], 'utf8');

function run(opts) {
  const o = Object.assign({
    href: 'https://shop.example/p/D1001', referrer: 'https://search.example/?q=tea',
    currentScript: true, readyState: 'complete', elements: [], loads: 1,
  }, opts);
  const sent = [];
  const listeners = {};
  const script = { src: 'https://ads.example/tag.js', getAttribute: (n) => (n === 'data-advertiser' ? 'demo' : null) };
  const document = {
    currentScript: o.currentScript ? script : null,
    readyState: o.readyState,
    referrer: o.referrer,
    querySelector: (sel) => (sel === 'script[src*="tag.js"][data-advertiser]' ? script : null),
    querySelectorAll: (sel) => (sel === '[data-adserver-event]'
      ? o.elements.map((attrs) => ({ getAttribute: (n) => (n in attrs ? attrs[n] : null) })) : []),
    addEventListener: (type, fn) => { (listeners[type] = listeners[type] || []).push(fn); },
  };
  if (o.broken) {
    document.currentScript = null;
    document.querySelector = document.querySelectorAll = () => { throw new Error('broken'); };
  }
  class Image { set src(v) { sent.push(v); } }
  const sandbox = { document, location: { href: o.href }, Image, URL };
  sandbox.window = sandbox;
  vm.createContext(sandbox);
  const result = { sent, error: null };
  try {
    if (o.before) vm.runInContext(o.before, sandbox);
    for (let i = 0; i < o.loads; i++) vm.runInContext(code, sandbox);
    result.beforeReady = sent.length;
    (listeners.DOMContentLoaded || []).forEach((fn) => fn());
    if (o.after) vm.runInContext(o.after, sandbox);
  } catch (e) {
    result.error = String(e);
  }
  return result;
}

const scenarios = {
  view_item: { after: "adserver.push({event: 'view_item', sku: 'D1001'})" },
  queued: {
    before: "window.adserver = window.adserver || []; adserver.push({event: 'view_home'}); var held = adserver;",
    after: "held.push({event: 'add_to_cart', sku: 'D1002'})",
  },
  purchase: {
    after: "adserver.push({event: 'purchase', sku: ['D1001', 'D1002'], order: 'O 1&2', value: '12.50', currency: 'CNY'})",
  },
  attributes: {
    readyState: 'loading',
    elements: [{ 'data-adserver-event': 'view_item', 'data-adserver-sku': 'D1003' }],
  },
  long_url: {
    href: 'https://shop.example/?q=' + '\u8336'.repeat(3000) + '%zz',
    referrer: 'https://other.example/' + 'a'.repeat(5000),
    after: "adserver.push({event: 'view_list', sku: Array.from({length: 80}, (_, i) => 'SKU-' + i + '-' + 'x'.repeat(40))})",
  },
  fallback_script: { currentScript: false, after: "adserver.push({event: 'view_home'})" },
  broken_document: { broken: true, after: "window.adserver = window.adserver || []; adserver.push({event: 'view_home'})" },
  loaded_twice: { loads: 2, elements: [{ 'data-adserver-event': 'view_home' }] },
  bad_pushes: {
    after: "adserver.push(null, {}, 7, {event: 'view_item', sku: '\uD800'}, {event: 'view_item', sku: {toString() { throw 1; }}}); adserver.push({event: 'view_cart', sku: []})",
  },
};
const out = {};
for (const [name, opts] of Object.entries(scenarios)) out[name] = run(opts);
process.stdout.write(JSON.stringify(out));
"""


def test_tag_is_served(client):
    response = client.get("/static/tag.js")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    response.close()
    assert "px.gif" in body
    assert "encodeURIComponent" in body
    assert "<noscript>" in body  # installation notes at the top
    assert len(TAG.read_bytes()) < 4.5 * 1024  # with its notes and the consent platform (IAB TCF) handshake


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    harness = tmp_path_factory.mktemp("tag") / "harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    done = subprocess.run([node, str(harness), str(TAG)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def params(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def test_push_sends_the_pixel(runs):
    run = runs["view_item"]
    assert run["error"] is None
    assert len(run["sent"]) == 1
    assert re.fullmatch(
        r"https://ads\.example/px\.gif\?a=demo&e=view_item&sku=D1001"
        r"&url=https%3A%2F%2Fshop\.example%2Fp%2FD1001&ref=https%3A%2F%2Fsearch\.example%2F%3Fq%3Dtea"
        r"&cb=[0-9a-z]+",
        run["sent"][0],
    ), run["sent"][0]


def test_pushes_made_before_loading_are_sent(runs):
    run = runs["queued"]
    assert run["error"] is None
    events = [dict(params(url)) for url in run["sent"]]
    assert [(e["e"], e.get("sku")) for e in events] == [("view_home", None), ("add_to_cart", "D1002")]


def test_purchase_fields(runs):
    (url,) = runs["purchase"]["sent"]
    assert "sku=D1001%2CD1002&order=O%201%262&value=12.50&currency=CNY&" in url
    got = dict(params(url))
    assert got["sku"] == "D1001,D1002" and got["order"] == "O 1&2"


def test_data_attributes_fire_once_the_page_is_parsed(runs):
    run = runs["attributes"]
    assert run["error"] is None
    assert run["beforeReady"] == 0
    assert [dict(params(u))["e"] for u in run["sent"]] == ["view_item"]
    assert dict(params(run["sent"][0]))["sku"] == "D1003"


def test_long_values_are_cut_to_fit_the_request_line(runs):
    run = runs["long_url"]
    assert run["error"] is None
    (url,) = run["sent"]
    query = urlsplit(url).query
    raw = dict(pair.split("=", 1) for pair in query.split("&"))
    assert len(raw["url"]) <= 1000 and len(raw["ref"]) <= 1000 and len(raw["sku"]) <= 1000
    assert len("GET /px.gif?" + query + " HTTP/1.1") < 4094
    decoded = unquote(raw["url"], errors="strict")  # cut between characters, never inside one
    assert decoded.startswith("https://shop.example/?q=\u8336")
    skus = dict(params(url))["sku"].split(",")
    assert all(re.fullmatch(r"SKU-\d+-x{40}", s) for s in skus)  # whole skus only


def test_script_element_found_without_current_script(runs):
    (url,) = runs["fallback_script"]["sent"]
    assert url.startswith("https://ads.example/px.gif?a=demo&e=view_home&")


def test_never_throws_into_the_page(runs):
    assert runs["broken_document"]["error"] is None
    assert runs["broken_document"]["sent"] == []
    assert runs["bad_pushes"]["error"] is None
    events = [dict(params(u)) for u in runs["bad_pushes"]["sent"]]
    assert [(e["e"], e.get("sku")) for e in events] == [("view_item", None), ("view_cart", None)]


def test_loading_twice_does_not_send_twice(runs):
    assert runs["loaded_twice"]["error"] is None
    assert len(runs["loaded_twice"]["sent"]) == 1
