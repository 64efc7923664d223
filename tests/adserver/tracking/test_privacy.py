"""Privacy: forgetting a visitor (a queue, rate-limited), same-origin forms only, and Do Not Track.

``POST /privacy/forget`` deletes the Redis profile at once and queues the visitor; the forget job
deletes every queued visitor's rows with one mutation per table. Both it and ``POST /optout`` take
only a same-origin form carrying the token of the ``/optout`` page: another site cannot make its
visitors' browsers send them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import drain
from tests.waiting import poll

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin", "User-Agent": CHROME}


def _uid(client) -> str:
    return client.get_cookie("uid").value.split(".")[0]


def form_token(client) -> str:
    """The token of the ``/optout`` page's forms, as a browser would read it from the page."""
    page = client.get("/optout").get_data(as_text=True)
    tokens = set(re.findall(r'<input type="hidden" name="csrf_token" value="([^"]+)">', page))
    assert len(tokens) == 1, page
    return tokens.pop()


def _forget(client, token: str | None = None, headers: dict | None = None, address: str = "198.51.100.7"):
    data = {"csrf_token": form_token(client) if token is None else token}
    return client.post("/privacy/forget", data=data, headers=SAME_ORIGIN if headers is None else headers,
                       environ_base={"REMOTE_ADDR": address})


def _visit(client) -> str:
    client.get("/px.gif?a=demo&e=view_item&sku=D1001", headers={"User-Agent": CHROME})
    client.get("/ad.json?p=demo-feed&size=300x250", headers={"User-Agent": CHROME})
    return _uid(client)


def _mutations(ch, uid: str) -> dict[str, int]:
    """Mutations that name ``uid``, per table (the test database is shared with earlier tests)."""
    return dict(ch.execute("SELECT table, count() FROM system.mutations WHERE database = currentDatabase() "
                           "AND command LIKE %(pattern)s GROUP BY table", {"pattern": f"%{uid}%"}))


def _rows(ch, uid: str) -> int:
    return ch.execute("SELECT count() FROM events WHERE uid = %(u)s", {"u": uid})[0][0]


def _wait_for_no_rows(ch, uid: str) -> None:
    """Until the rows are gone and the deletions done (mutations apply asynchronously)."""
    from tracker.forget import unfinished_deletions

    poll(lambda: not _rows(ch, uid) and not unfinished_deletions(ch), 20)


# --- forgetting: the profile now, the events by the job ------------------------------------------


def test_forget_deletes_the_profile_now_and_queues_the_events(client, demo_loaded, writer, ch, redis_client):
    from tracker.forget import pending, run_pending

    uid = _visit(client)
    other = client.application.test_client()
    other.get("/px.gif?a=demo&e=view_item&sku=D1004", headers={"User-Agent": CHROME})
    drain(writer)
    assert redis_client.keys("p:*}:%s:*" % uid)

    response = _forget(client)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["visitor_known"] is True
    assert body["profile"] == "deleted" and body["events"] == "queued"
    # The advertiser index, the recently-viewed list, and the frequency state the impression left.
    assert body["profile_keys_removed"] == 4
    assert 0 < body["scheduled_within_seconds"] <= client.application.extensions["adserver"].settings.forget_interval
    assert "uid=;" in response.headers["Set-Cookie"]
    assert redis_client.keys("p:*}:%s:*" % uid) == []
    # Nothing was asked of ClickHouse by the request: the rows wait for the job.
    assert _mutations(ch, uid) == {}
    assert _rows(ch, uid) == 2
    assert pending(redis_client) == 1

    run = run_pending(ch, redis_client)
    assert run.visitors == 1 and run.remaining == 0
    _wait_for_no_rows(ch, uid)
    assert _rows(ch, uid) == 0
    assert _rows(ch, _uid(other)) == 1
    assert pending(redis_client) == 0


def test_forget_flood_makes_one_mutation_per_table_per_job_run(app, demo_loaded, writer, ch, redis_client):
    """Many visitors of a hostile page, one address: the burst is cut at the address's limit, and
    whatever got through costs one mutation per table that holds rows, not one per call."""
    from adserver.tracking.privacy import FORGET_LIMIT_ADDRESS, FORGET_WINDOW
    from tracker.forget import run_pending

    visitors = [app.test_client() for _ in range(FORGET_LIMIT_ADDRESS + 3)]
    uids = [_visit(v) for v in visitors]
    drain(writer)
    answers = [_forget(v, address="203.0.113.9") for v in visitors]
    assert [a.status_code for a in answers] == [200] * FORGET_LIMIT_ADDRESS + [429] * 3
    refused = answers[-1]
    assert 0 < int(refused.headers["Retry-After"]) <= FORGET_WINDOW
    assert refused.get_json()["error"] == "rate_limited"
    assert all(_mutations(ch, uid) == {} for uid in uids)  # the burst itself mutated nothing

    run = run_pending(ch, redis_client)
    assert run.visitors == FORGET_LIMIT_ADDRESS
    # Views and impressions are in events; impressions also in the attribution touchpoints.
    assert run.mutations == {"events": 1, "report_touchpoints": 1}
    for uid in uids[:FORGET_LIMIT_ADDRESS]:
        assert _mutations(ch, uid) == {"events": 1, "report_touchpoints": 1}
    for uid in uids[FORGET_LIMIT_ADDRESS:]:
        assert _mutations(ch, uid) == {}
    _wait_for_no_rows(ch, uids[0])
    assert [_rows(ch, uid) for uid in uids] == [0] * FORGET_LIMIT_ADDRESS + [2] * 3
    assert run_pending(ch, redis_client).mutations == {}  # nothing queued, nothing done


def test_forget_is_limited_per_visitor(client, demo_loaded, redis_client):
    from adserver.tracking.privacy import FORGET_LIMIT_VISITOR

    cookie = client.get("/px.gif?a=demo&e=view_item&sku=D1001").headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    answers = []
    for i in range(FORGET_LIMIT_VISITOR + 1):
        client.set_cookie("uid", cookie)  # a script keeping the cookie the answer deletes
        answers.append(_forget(client, address=f"192.0.2.{i + 1}"))  # and changing address each time
    assert [a.status_code for a in answers] == [200] * FORGET_LIMIT_VISITOR + [429]
    assert answers[-1].headers["Retry-After"].isdigit()


def test_forget_limit_counts_the_address_behind_trusted_proxies_only(app, demo_loaded, redis_client):
    """A forged ``X-Forwarded-For`` from an untrusted peer does not make a fresh address."""
    from adserver.tracking.privacy import FORGET_LIMIT_ADDRESS

    statuses = []
    for i in range(FORGET_LIMIT_ADDRESS + 1):
        visitor = app.test_client()
        visitor.get("/px.gif?a=demo&e=view_home")
        statuses.append(_forget(visitor, headers={**SAME_ORIGIN, "X-Forwarded-For": f"192.0.2.{i}"},
                                address="198.51.100.99").status_code)
    assert statuses == [200] * FORGET_LIMIT_ADDRESS + [429]
    visitor = app.test_client()
    visitor.get("/px.gif?a=demo&e=view_home")
    assert _forget(visitor, address="198.51.100.100").status_code == 200  # another address is not held up


def test_forget_without_a_valid_cookie_removes_nothing(client, demo_loaded, redis_client):
    from tracker.forget import pending

    body = _forget(client).get_json()
    assert body["visitor_known"] is False and body["profile"] == "none" and body["events"] == "none"
    client.set_cookie("uid", "forged.cookie")
    assert _forget(client).get_json()["visitor_known"] is False
    assert pending(redis_client) == 0
    assert client.get("/privacy/forget").status_code == 405


def test_a_form_submission_gets_the_page_back(client, demo_loaded, redis_client):
    """Without JavaScript the browser shows what the server answers: HTML for an HTML form."""
    _visit(client)
    response = client.post("/privacy/forget", data={"csrf_token": form_token(client)},
                           headers={**SAME_ORIGIN, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "profile was deleted" in page and "queued" in page


def test_a_full_queue_is_said_plainly(client, demo_loaded, redis_client):
    from tracker.forget import QUEUE_KEY, QUEUE_LIMIT

    redis_client.zadd(QUEUE_KEY, {f"q{i}": i for i in range(QUEUE_LIMIT)})
    uid = _visit(client)
    response = _forget(client)
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "queue_full" and body["events"] == "not_queued" and body["profile"] == "deleted"
    assert int(response.headers["Retry-After"]) > 0
    assert redis_client.keys("p:*}:%s:*" % uid) == []
    assert client.get_cookie("uid") is not None  # kept, so that asking again later still names this browser


EMBEDDED = textwrap.dedent("""
    import json, re, time
    from adserver import create_app
    from adserver.cli import run

    assert run(["create-advertiser", "shop"]) == 0
    app = create_app()
    client = app.test_client()
    client.get("/px.gif?a=shop&e=view_home")
    uid = client.get_cookie("uid").value.split(".")[0]
    ch = app.extensions["adserver"].ch

    def rows():
        return ch.execute("SELECT count() FROM events WHERE uid = %(u)s", {"u": uid})[0][0]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not rows():
        time.sleep(0.05)
    stored = rows()
    page = client.get("/optout").get_data(as_text=True)
    token = re.search('name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/privacy/forget", data={"csrf_token": token}, headers={"Origin": "http://localhost"})
    while time.monotonic() < deadline and rows():
        time.sleep(0.05)
    print(json.dumps({"stored": stored, "answer": answer.get_json(), "left": rows()}))
""")


@pytest.mark.slow
def test_the_embedded_writer_runs_the_forget_job(tmp_path):
    """``make run``'s single process: its writer thread forgets queued visitors too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADSERVER_")}
    env.update(ADSERVER_DATA_DIR=str(tmp_path / "var"), ADSERVER_FORGET_INTERVAL="1")
    result = subprocess.run([sys.executable, "-c", EMBEDDED], env=env, cwd=os.getcwd(), capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["stored"] == 1
    assert out["answer"]["events"] == "queued" and out["answer"]["scheduled_within_seconds"] == 1
    assert out["left"] == 0


# --- hostile input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cookie", [
    pytest.param("x" * 4_000, id="4k-cookie"),
    pytest.param("A" * 22 + "." + "B" * 16, id="well-shaped-unsigned"),
    pytest.param("'); DROP TABLE events; --", id="sql"),
    pytest.param("\u00e9\u00e8" * 50, id="non-ascii"),
])
def test_forget_with_a_garbage_cookie_queues_nothing(client, demo_loaded, redis_client, cookie):
    from tracker.forget import pending

    client.set_cookie("uid", cookie)
    response = _forget(client)
    assert response.status_code == 200
    assert response.get_json()["visitor_known"] is False
    assert pending(redis_client) == 0


def test_a_visitor_forgotten_twice_is_queued_once(client, demo_loaded, redis_client):
    from tracker.forget import pending

    cookie = client.get("/px.gif?a=demo&e=view_home").headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    for _ in range(2):
        client.set_cookie("uid", cookie)
        assert _forget(client).status_code == 200
    assert pending(redis_client) == 1


@pytest.mark.parametrize("token", [
    pytest.param("", id="empty"),
    pytest.param("A" * 16, id="forged"),
    pytest.param("x" * 5_000, id="5k"),
    pytest.param("%%%\u00e9", id="not-base64"),
])
def test_a_bad_token_is_refused(client, demo_loaded, redis_client, token):
    _visit(client)
    form_token(client)  # the browser has its nonce cookie, but the form says something else
    response = _forget(client, token=token)
    assert response.status_code == 403
    assert response.get_json()["error"] == "bad_token"
    assert redis_client.keys("p:*")


# --- cross-site requests ---------------------------------------------------------------------------

CROSS_SITE = [
    pytest.param({"Origin": "https://evil.test"}, "cross_site", id="foreign-origin"),
    pytest.param({"Origin": "null"}, "cross_site", id="opaque-origin"),
    pytest.param({"Origin": "http://localhost.evil.test"}, "cross_site", id="lookalike-origin"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, "cross_site", id="fetch-site-cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site"}, "cross_site", id="fetch-site-same-site"),
    pytest.param({"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"}, "cross_site", id="mixed"),
]


@pytest.mark.parametrize(("headers", "code"), CROSS_SITE)
def test_cross_site_forget_is_refused(client, demo_loaded, redis_client, headers, code):
    from tracker.forget import pending

    uid = _visit(client)
    response = _forget(client, headers={"User-Agent": CHROME, **headers})  # even with a valid token
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == code and "same site" in body["message"]
    assert redis_client.keys("p:*}:%s:*" % uid)
    assert pending(redis_client) == 0
    assert "uid=;" not in response.headers.get("Set-Cookie", "")


def test_forget_without_a_token_is_refused(client, demo_loaded, redis_client):
    """What a hostile page's form sends (no Origin from an old browser): no token, no nonce cookie."""
    uid = _visit(client)
    response = client.post("/privacy/forget", headers={"User-Agent": CHROME})
    assert response.status_code == 403
    assert response.get_json()["error"] == "bad_token"
    assert "reload" in response.get_json()["message"]
    assert redis_client.keys("p:*}:%s:*" % uid)


def test_a_token_only_works_with_its_own_browser(app, demo_loaded, redis_client):
    attacker, victim = app.test_client(), app.test_client()
    stolen = form_token(attacker)
    uid = _visit(victim)
    form_token(victim)
    assert _forget(victim, token=stolen).status_code == 403
    assert redis_client.keys("p:*}:%s:*" % uid)


@pytest.mark.parametrize(("headers", "code"), CROSS_SITE)
def test_cross_site_optout_is_refused(client, demo_loaded, redis_client, headers, code):
    uid = _visit(client)
    response = client.post("/optout", data={"csrf_token": form_token(client)}, headers={"User-Agent": CHROME, **headers})
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "same site" in response.get_data(as_text=True)
    assert "optout=1" not in response.headers.get("Set-Cookie", "")
    assert redis_client.keys("p:*}:%s:*" % uid)


def test_optout_without_a_token_is_refused(client, demo_loaded, redis_client):
    uid = _visit(client)
    response = client.post("/optout", headers={"User-Agent": CHROME})
    assert response.status_code == 403
    assert "optout=1" not in response.headers.get("Set-Cookie", "")
    assert client.get_cookie("optout") is None
    assert redis_client.keys("p:*}:%s:*" % uid)


def test_same_origin_optout_with_the_page_token_works(client, demo_loaded, redis_client):
    uid = _visit(client)
    response = client.post("/optout", data={"csrf_token": form_token(client)}, headers=SAME_ORIGIN)
    assert response.status_code == 200
    assert client.get_cookie("optout").value == "1"
    assert redis_client.keys("p:*}:%s:*" % uid) == []
    # An old browser that sends neither Origin nor Sec-Fetch-Site: the token alone is enough.
    again = client.post("/optout", data={"csrf_token": form_token(client)}, headers={"User-Agent": CHROME})
    assert again.status_code == 200


def test_the_optout_page_carries_its_token_in_both_forms(client, demo_loaded):
    _visit(client)
    response = client.get("/optout")
    page = response.get_data(as_text=True)
    assert '<form method="post" action="/optout">' in page
    assert '<form method="post" action="/privacy/forget">' in page
    assert page.count('name="csrf_token"') == 2
    assert "<script" not in page  # works without JavaScript
    nonce = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("privacy_nonce=")]
    assert nonce and "SameSite=Strict" in nonce[0] and "HttpOnly" in nonce[0]
    # The same browser keeps its nonce: a second page view gives a token that still matches.
    assert form_token(client) == form_token(client)


# --- Do Not Track ----------------------------------------------------------------------------------


def test_do_not_track_visitors_are_not_tracked(client, demo_loaded, settings, redis_client):
    response = client.get("/px.gif?a=demo&e=view_item&sku=D1001", headers={"DNT": "1"})
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert "Set-Cookie" not in response.headers
    assert redis_client.xlen(settings.stream_key) == 0
    ad = client.get("/ad.json?p=demo-feed&size=300x250", headers={"DNT": "1"}).get_json()
    assert ad["path"] == "fallback" and ad["addressable"] is False
