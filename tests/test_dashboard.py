"""The dashboard over HTTP: sign-in, session cookie, CSRF, pages and their headers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage import seeds
from engage.store import links, polls, tokens

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"THROTTLE_VOTES": 100_000}


@pytest.fixture
def seeded(app: Flask, store: Any, catch_up: Any) -> Any:
    with app.app_context():
        seeds.load(store, app.config["SEEDS_DIR"])
    catch_up()
    return store


def csrf_of(client: FlaskClient, path: str = "/dashboard/signin") -> str:
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def sign_in(client: FlaskClient, token: str) -> Any:
    return client.post("/dashboard/signin", data={"token": token, "csrf_token": csrf_of(client)})


@pytest.fixture
def signed_in(client: FlaskClient, editor_token: str, seeded: Any) -> FlaskClient:
    response = sign_in(client, editor_token)
    assert response.status_code == 302
    return client


def test_sign_in_sets_a_safe_cookie_without_the_secret(
    app: Flask, client: FlaskClient, editor_token: str
) -> None:
    response = sign_in(client, editor_token)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("engage_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    data = app.session_interface.get_signing_serializer(app).loads(value)  # type: ignore[attr-defined]
    secret = editor_token.split(".", 1)[1]
    assert secret not in json.dumps(data)
    assert client.get("/dashboard").status_code == 200


def test_cookie_is_secure_over_https(client: FlaskClient, editor_token: str) -> None:
    page = client.get("/dashboard/signin", base_url="https://engage.example")
    token = CSRF.search(page.get_data(as_text=True))
    assert token
    response = client.post("/dashboard/signin", base_url="https://engage.example",
                           data={"token": editor_token, "csrf_token": token.group(1)})
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("trusted, secure", [([], False), (["127.0.0.0/8"], True)])
def test_cookie_is_secure_behind_a_trusted_tls_proxy(
    redis_server: Any, tmp_path: Any, trusted: list[str], secure: bool
) -> None:
    from tests.conftest import make_app

    redis_server.client().flushall()
    app = make_app(redis_server.url, tmp_path, TRUSTED_PROXIES=trusted)
    with app.app_context():
        from engage.store import get_store

        token = tokens.create(get_store(), "editor", "proxy")[0]
    client = app.test_client()
    proxied = {"X-Forwarded-Proto": "https"}
    page = client.get("/dashboard/signin", headers=proxied).get_data(as_text=True)
    csrf = CSRF.search(page)
    assert csrf
    response = client.post("/dashboard/signin", headers=proxied,
                           data={"token": token, "csrf_token": csrf.group(1)})
    assert response.status_code == 302
    assert ("Secure" in response.headers["Set-Cookie"]) is secure
    with app.app_context():
        get_store().close()


def test_revoking_the_token_ends_the_session(
    client: FlaskClient, store: Any, seeded: Any
) -> None:
    token, record = tokens.create(store, "editor", "temp")
    assert sign_in(client, token).status_code == 302
    assert client.get("/dashboard").status_code == 200
    tokens.revoke(store, record["id"])
    response = client.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/signin")
    assert client.get("/dashboard/live.json").status_code == 401


def test_sign_out_needs_csrf_and_ends_the_session(signed_in: FlaskClient) -> None:
    refused = signed_in.post("/dashboard/signout")
    assert refused.status_code == 403
    assert signed_in.get("/dashboard").status_code == 200
    token = csrf_of(signed_in, "/dashboard")
    assert signed_in.post("/dashboard/signout", data={"csrf_token": token}).status_code == 302
    assert signed_in.get("/dashboard").status_code == 302


def test_a_cookie_copied_before_sign_out_is_refused_after_it(
    app: Flask, signed_in: FlaskClient, store: Any
) -> None:
    cookie = signed_in.get_cookie("engage_session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("engage_session", cookie.value)
    assert thief.get("/dashboard").status_code == 200  # the copy works while signed in
    (key,) = store.redis.scan_iter(match="*:session:*")
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    session_id = serializer.loads(cookie.value)["staff"]["sid"]
    assert session_id not in key  # Redis keeps a digest: its keys are no cookies
    token = csrf_of(signed_in, "/dashboard")
    assert signed_in.post("/dashboard/signout", data={"csrf_token": token}).status_code == 302
    assert list(store.redis.scan_iter(match="*:session:*")) == []
    response = thief.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/signin")
    assert thief.get("/dashboard/live.json").status_code == 401
    assert signed_in.get("/dashboard").status_code == 302


def test_sessions_end_on_the_server_after_their_lifetime(signed_in: FlaskClient,
                                                         store: Any) -> None:
    (key,) = store.redis.scan_iter(match="*:session:*")
    assert 0 < store.redis.ttl(key) <= 12 * 3600
    store.redis.delete(key)  # as Redis does when the lifetime is over
    assert signed_in.get("/dashboard").status_code == 302


def test_sign_in_without_csrf_is_refused(client: FlaskClient, editor_token: str) -> None:
    response = client.post("/dashboard/signin", data={"token": editor_token})
    assert response.status_code == 403
    assert "did not come from this site" in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


def test_next_is_never_an_open_redirect(client: FlaskClient, editor_token: str) -> None:
    for target, expected in (("https://evil.example/x", "/dashboard"),
                             ("//evil.example", "/dashboard"),
                             ("/dashboard/polls", "/dashboard/polls")):
        csrf = csrf_of(client)
        response = client.post(f"/dashboard/signin?next={target}",
                               data={"token": editor_token, "csrf_token": csrf})
        assert response.headers["Location"] == expected


@pytest.mark.parametrize("target", [
    "/dashboard%0d%0aSet-Cookie:%20a=b", "/dashboard%0aLocation:%20https://evil.example",
    "/dashboard/%00", "/dashboard%09x", "/dashboard/%7f", "/dashboard/%5c%5cevil.example",
    "/dashboard/\u2028x", "/dashboard:99999/x",
])
def test_control_characters_in_next_give_a_safe_redirect(
    client: FlaskClient, editor_token: str, target: str
) -> None:
    response = client.post(f"/dashboard/signin?next={target}",
                           data={"token": editor_token, "csrf_token": csrf_of(client)})
    assert response.status_code == 302, response.get_data(as_text=True)[:200]
    location = response.headers["Location"]
    assert location.startswith("/dashboard")
    assert not re.search(r"[\x00-\x1f\x7f\\]", location), location


def test_poll_close_and_reopen_need_csrf(signed_in: FlaskClient, store: Any) -> None:
    poll = polls.list_page(store)[0][0]
    path = f"/dashboard/polls/{poll.id}/status"
    assert signed_in.post(path, data={"status": "closed"}).status_code == 403
    other = csrf_of(signed_in.application.test_client())  # another session's token
    assert signed_in.post(path, data={"status": "closed", "csrf_token": other}).status_code == 403
    json_refusal = signed_in.post(path, data={"status": "closed"},
                                  headers={"Accept": "application/json"})
    assert json_refusal.status_code == 403
    assert json_refusal.json["error"]["code"] == "csrf_failed"
    assert polls.get(store, poll.id).status == "open"

    token = csrf_of(signed_in, "/dashboard/polls")
    closed = signed_in.post(path, data={"status": "closed", "csrf_token": token})
    assert closed.status_code == 302
    assert polls.get(store, poll.id).status == "closed"
    page = signed_in.get("/dashboard/polls?notice=Poll+closed.").get_data(as_text=True)
    assert "Reopen" in page
    reopened = signed_in.post(path, data={"status": "open"}, headers={"X-CSRF-Token": token})
    assert reopened.status_code == 302
    assert polls.get(store, poll.id).status == "open"


def test_pages_render_with_strict_headers_and_no_inline_script(
    signed_in: FlaskClient, store: Any
) -> None:
    for path in ("/dashboard", "/dashboard?range=24h&sort=trending", "/dashboard?range=30d",
                 "/dashboard/articles/korea-china-reset",
                 "/dashboard/articles/korea-china-reset?bucket=day",
                 "/dashboard/polls", "/dashboard/live", "/dashboard/signin"):
        response = signed_in.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"]
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert "camera=()" in response.headers["Permissions-Policy"]
        assert "no-store" in response.headers["Cache-Control"]
        html = response.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html), path
    missing = signed_in.get("/dashboard/articles/no-such-story")
    assert missing.status_code == 404
    assert "Nothing here" in missing.get_data(as_text=True) and missing.mimetype == "text/html"
    missing_json = signed_in.get("/dashboard/articles/no-such-story",
                                 headers={"Accept": "application/json"})
    assert missing_json.json["error"]["code"] == "not_found"
    assert signed_in.get("/dashboard?range=forever").status_code == 404


def test_overview_ranks_like_the_api(
    signed_in: FlaskClient, editor: dict[str, str]
) -> None:
    api = signed_in.get("/api/v1/stats/articles?sort=approval", headers=editor).json
    html = signed_in.get("/dashboard?sort=approval").get_data(as_text=True)
    table = html[html.index("Articles ranked by approval"):]
    rows = re.findall(r'<tr data-article="([^"]+)">', table)
    assert rows == [a["id"] for a in api["articles"]]
    # 5 of 5 sits below 210 of 255 and 600 of 800
    assert rows.index("yellow-sea-buoys-explainer") > rows.index("k-content-exports-2026")
    assert "Sections compared" in html and "Diplomacy" in html


def test_article_page_shows_chart_reasons_polls_and_link_ctr(
    signed_in: FlaskClient, store: Any
) -> None:
    from engage.store import reactions

    reactions.vote(store, "korea-china-reset", "critic", "addr", "no", "biased")
    curated = links.curated(store, "korea-china-reset")
    policy = next(link for link in curated if link["title"] == "Policy Link")
    links.impressions(store, "korea-china-reset", "addr", [link["id"] for link in curated])
    for _ in range(3):
        links.impressions(store, "korea-china-reset", "addr", [policy["id"]])
    links.click(store, policy["id"], "addr")
    html = signed_in.get("/dashboard/articles/korea-china-reset?bucket=day").get_data(
        as_text=True)
    assert '<svg class="chart"' in html and "<rect" in html
    # the seed votes are spread over the chart's 30 days; the critic's is today's
    assert "▲ yes: 210 in range" in html and "▼ no: 46 in range" in html
    assert "Biased" in html
    assert "Will Seoul and Beijing fully restore ties in 2026?" in html
    row = html[html.index("Policy Link"):]
    cells = re.findall(r'<td class="num">([^<]+)</td>', row)[:3]
    assert cells == ["4", "1", "25.0%"]


def test_article_page_shows_refused_activity_per_hour(signed_in: FlaskClient, store: Any,
                                                      app: Flask) -> None:
    page = "/dashboard/articles/korea-china-reset"
    assert "Nothing refused in this range." in signed_in.get(page).get_data(as_text=True)
    from engage.store import reactions

    reactions.vote(store, "korea-china-reset", "fan", "addr", "yes")
    reactions.vote(store, "korea-china-reset", "fan", "addr", "yes")  # a repeat
    policy = next(link for link in links.curated(store, "korea-china-reset")
                  if link["title"] == "Policy Link")
    for _ in range(3):
        links.click(store, policy["id"], "addr")
    links.click(store, policy["id"], "addr", links.NOT_HUMAN)
    links.click(store, policy["id"], "addr", links.PREFETCH)
    html = signed_in.get(page).get_data(as_text=True)
    table = html[html.index('id="refused-table"'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><th scope=\"row\">", table)
    assert len(rows) == 1  # only the hour in which something was refused
    assert re.findall(r'<td data-n="(\d+)">', table) == ["1", "4", "0"]
    assert "0 throttled · 1 repeated" in table
    assert "2 repeated · 0 throttled · 1 bots · 1 prefetches" in table


def test_live_json_reports_new_votes(
    signed_in: FlaskClient, store: Any, catch_up: Any
) -> None:
    from engage.store import reactions

    before = signed_in.get("/dashboard/live.json").json
    assert before["events"] and before["cursor"]
    reactions.vote(store, "thaad-ten-years-on", "newcomer", "addr", "yes")
    catch_up()
    after = signed_in.get("/dashboard/live.json?since=" + before["cursor"]).json
    assert after["totals"]["total"] == before["totals"]["total"] + 1
    # only what changed since the cursor the page sent back
    assert len(after["events"]) == 1
    newest = after["events"][0]
    assert newest["type"] == "reaction.vote" and newest["article"] == "thaad-ten-years-on"
    assert "reader" not in newest
    assert newest["title"] == "THAAD, ten years on: how one battery reshaped a relationship"
    quiet = signed_in.get("/dashboard/live.json?since=" + after["cursor"]).json
    assert quiet["events"] == [] and quiet["cursor"] == after["cursor"]


def test_live_json_names_polls_and_counts_impressions_apart(
    signed_in: FlaskClient, store: Any, catch_up: Any
) -> None:
    from engage.store import reactions

    cursor = signed_in.get("/dashboard/live.json").json["cursor"]
    poll = polls.list_page(store)[0][0]
    polls.vote(store, poll.id, "newcomer", "addr-1", [poll.options[0]["id"]])
    curated = links.curated(store, "korea-china-reset")
    for n in range(30):  # page views: each reader sees the related links
        links.impressions(store, "korea-china-reset", f"addr-{n}", [curated[0]["id"]])
    reactions.vote(store, "thaad-ten-years-on", "newcomer", "addr-1", "yes")
    catch_up()
    after = signed_in.get("/dashboard/live.json?since=" + cursor).json
    by_type = {e["type"]: e for e in after["events"]}
    assert sorted(by_type) == ["poll.vote", "reaction.vote"] and len(after["events"]) == 2
    assert by_type["poll.vote"]["question"] == poll.question
    assert after["impressions"] == 30


def test_dashboard_export_streams_every_event(signed_in: FlaskClient, store: Any) -> None:
    response = signed_in.get("/dashboard/export?format=ndjson")
    assert response.status_code == 200
    lines = response.get_data(as_text=True).splitlines()
    expected = sum(store.redis.xlen(key) for key in _streams(store))
    assert len(lines) == expected
    assert signed_in.get("/dashboard/export?format=xml").status_code == 422


def _streams(store: Any) -> list[str]:
    from engage.store import events

    return events.stream_keys(store)


DEMO_NOW = datetime(2026, 11, 30, 15, 20, tzinfo=UTC)


@pytest.fixture
def demo_month(app: Flask, store: Any, clock: Any, catch_up: Any) -> Any:
    """The demo seeds loaded at a fixed time, so the history's shape is the same every run."""
    clock.time = DEMO_NOW
    with app.app_context():
        seeds.load(store, app.config["SEEDS_DIR"])
    catch_up()
    return store


def test_demo_history_fills_thirty_days_of_the_article_chart(
    demo_month: Any, client: FlaskClient, editor: dict[str, str]
) -> None:
    body = client.get("/api/v1/articles/korea-china-reset/stats?bucket=day",
                      headers=editor).json
    votes = [sum(point["added"].values()) for point in body["points"]]
    assert len(votes) >= 30
    assert sum(votes) == 255  # every seed vote of reactions.json, none twice
    assert sum(1 for n in votes[-30:] if n) >= 20  # not one bar at the current hour
    assert len(set(votes)) >= 8  # bars of varying height
    assert max(votes) >= 3 * (sum(votes) / len(votes))  # a story's peak stands out
    assert sum(point["poll_votes"] for point in body["points"]) == 96 + 214 + 130
    reasons = {r for point in body["points"] for r in point["reasons"]}
    assert len(reasons) >= 2

    hourly = client.get("/api/v1/articles/k-content-exports-2026/stats?bucket=hour",
                        headers=editor).json
    assert sum(1 for point in hourly["points"] if sum(point["added"].values())) >= 10


def test_demo_history_gives_each_article_its_own_trend(
    demo_month: Any, client: FlaskClient, editor: dict[str, str], app: Flask, catch_up: Any
) -> None:
    body = client.get("/api/v1/stats/articles?sort=trending", headers=editor).json
    factors = {a["id"]: a["trending"]["score"] for a in body["articles"]}
    assert len(factors) == 4
    assert len(set(factors.values())) >= 3, factors
    sections = client.get("/api/v1/stats/sections", headers=editor).json
    assert {s["section"] for s in sections["sections"]} == {"Diplomacy", "Business", "Security"}

    # the same clock gives the same month: loading again changes nothing
    with app.app_context():
        again = seeds.load(demo_month, app.config["SEEDS_DIR"])
    assert again["votes"] == 0 and again["poll votes"] == 0
    catch_up()  # the upserts are logged again; no vote is
    assert client.get("/api/v1/stats/articles?sort=trending", headers=editor).json == body


def test_poll_list_pages_fifty_at_a_time(signed_in: FlaskClient, store: Any) -> None:
    before = len(polls.list_page(store, limit=1000)[0])
    for n in range(51 - before + 5):
        polls.create(store, {"question": f"Page {n}?", "options": ["A", "B"],
                             "article": None, "multiple": False})
    first = signed_in.get("/dashboard/polls").get_data(as_text=True)
    second = signed_in.get("/dashboard/polls?page=2").get_data(as_text=True)
    assert first.count('class="poll"') == 50 and "Older polls" in first
    assert "Newer polls" not in first
    assert second.count('class="poll"') == 6 and "Newer polls" in second
    assert "Older polls" not in second
    assert signed_in.get("/dashboard/polls?page=0").status_code == 404


def test_polls_page_names_the_article_and_a_poll_closed_early(
        signed_in: FlaskClient, store: Any) -> None:
    poll = polls.create(store, {"question": "Early close?", "options": ["A", "B"],
                                "article": "korea-china-reset", "multiple": False,
                                "closes_at": datetime(2099, 12, 7, 17, 0, tzinfo=UTC)})
    page = signed_in.get("/dashboard/polls").get_data(as_text=True)
    block = page[page.index(f'data-poll="{poll.id}"'):]
    block = block[:block.index("</p>")]
    assert "China" in block and ">korea-china-reset<" not in block  # the title, not the id
    assert "closes <time datetime=" in block and "07 Dec 2099 17:00 UTC" in block
    polls.patch(store, poll.id, {"status": "closed"})
    page = signed_in.get("/dashboard/polls").get_data(as_text=True)
    block = page[page.index(f'data-poll="{poll.id}"'):]
    block = block[:block.index("</p>")]
    assert "closed early by an editor" in block and "2099" not in block


def test_polls_export_and_delete_from_the_dashboard(
        signed_in: FlaskClient, client: FlaskClient, admin_token: str, store: Any) -> None:
    poll = polls.create(store, {"question": "Keep or delete?", "options": ["Keep", "Delete"],
                                "article": "korea-china-reset", "multiple": False})
    polls.vote(store, poll.id, "r1", "addr-1", [poll.options[0]["id"]])
    page = signed_in.get("/dashboard/polls").get_data(as_text=True)
    assert f"/dashboard/polls/{poll.id}/export.csv" in page
    assert f"/dashboard/polls/{poll.id}/delete" not in page  # an editor: no delete
    exported = signed_in.get(f"/dashboard/polls/{poll.id}/export.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert ",,o1,Keep,1,100," in exported.get_data(as_text=True)
    assert signed_in.get(f"/dashboard/polls/{poll.id}/delete").status_code == 403

    sign_in(client, admin_token)
    asked = client.get(f"/dashboard/polls/{poll.id}/delete")
    assert asked.status_code == 200 and "Delete the poll “Keep or delete?”?" in asked.get_data(
        as_text=True)
    assert polls.get(store, poll.id) is not None  # asking deletes nothing
    token = csrf_of(client, f"/dashboard/polls/{poll.id}/delete")
    done = client.post(f"/dashboard/polls/{poll.id}/delete", data={"csrf_token": token})
    assert done.status_code == 302 and polls.get(store, poll.id) is None
    assert "Poll deleted: Keep or delete?" in client.get(done.headers["Location"]).get_data(
        as_text=True)


def test_one_articles_events_export_from_its_page(signed_in: FlaskClient, store: Any) -> None:
    from engage.store import events

    page = signed_in.get("/dashboard/articles/korea-china-reset").get_data(as_text=True)
    assert "/dashboard/export?format=ndjson&amp;article=korea-china-reset" in page
    response = signed_in.get("/dashboard/export?format=ndjson&article=korea-china-reset")
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert lines and {line["article"] for line in lines} == {"korea-china-reset"}
    assert len(lines) == len(list(events.iter_events(store, article="korea-china-reset")))
    assert "engage-events-korea-china-reset.ndjson" in response.headers["Content-Disposition"]
    assert signed_in.get("/dashboard/export?article=bad%20id").status_code == 422


def _table(html: str, table_id: str) -> list[list[str]]:
    """The rows of a table: each row's heading, then its cells' text."""
    table = html[html.index(f'id="{table_id}"'):]
    table = table[:table.index("</table>")]
    body = table[table.index("<tbody>"):]
    return [re.findall(r"<t[hd][^>]*>([^<]*)<", row) for row in body.split("<tr>")[1:]]


def test_poll_page_charts_answers_per_hour_with_a_table(
        signed_in: FlaskClient, store: Any, clock: Any) -> None:
    poll = polls.create(store, {"question": "Which way?", "options": ["North", "South", "West"],
                                "article": "korea-china-reset", "multiple": False})
    north, south, west = (option["id"] for option in poll.options)
    now = clock.time
    clock.time = now - timedelta(hours=2)
    for reader, option in (("r1", north), ("r2", north), ("r3", south)):
        polls.vote(store, poll.id, reader, f"addr-{reader}", [option])
    clock.time = now
    polls.vote(store, poll.id, "r1", "addr-r1", [west])  # a change: west taken, north left
    polls.vote(store, poll.id, "r2", "addr-r2", None)  # a withdrawal
    html = signed_in.get(f"/dashboard/polls/{poll.id}").get_data(as_text=True)
    chart = html[html.index('<svg class="chart"'):html.index("</svg>")]
    assert 'aria-labelledby="poll-chart-title"' in chart
    assert chart.count("<rect") == 3  # north and south two hours ago, west now
    assert "North: 2 answers" in html and "South: 1 answer<" in html and "West: 1 answer<" in html
    rows = _table(html, "poll-history-table")
    hour = "%d %b %H:%M"
    this_hour = now.replace(minute=0).strftime(hour)
    earlier = (now - timedelta(hours=2)).replace(minute=0).strftime(hour)
    assert rows == [[this_hour, "North", "0", "2"], [this_hour, "West", "1", "0"],
                    [earlier, "North", "2", "0"], [earlier, "South", "1", "0"]]
    assert "4 votes and changes, 2 answers withdrawn in range" in html
    daily = signed_in.get(f"/dashboard/polls/{poll.id}?bucket=day").get_data(as_text=True)
    today = [row[1:] for row in _table(daily, "poll-history-table")
             if row[0] == now.strftime("%d %b %Y")]
    assert ["West", "1", "0"] in today  # two hours ago may be yesterday
    assert signed_in.get(f"/dashboard/polls/{poll.id}?bucket=week").status_code == 404
    assert signed_in.get("/dashboard/polls/pnosuchpoll1").status_code == 404
    # The polls list and the article's page open it.
    link = f'href="/dashboard/polls/{poll.id}"'
    assert link in signed_in.get("/dashboard/polls").get_data(as_text=True)
    assert link in signed_in.get("/dashboard/articles/korea-china-reset").get_data(as_text=True)


def test_article_page_charts_link_clicks_per_hour_with_a_table(
        signed_in: FlaskClient, client: FlaskClient, editor: dict[str, str], store: Any,
        clock: Any) -> None:
    article = {"title": "Links over time", "url": "https://news.example.com/x/links-over-time",
               "section": "Diplomacy", "published_at": "2026-01-08T09:00:00Z"}
    assert client.put("/api/v1/articles/links-over-time", json=article,
                      headers=editor).status_code == 201
    first, second = links.set_links(store, "links-over-time", [
        {"title": "First read", "url": "https://news.example.com/first"},
        {"title": "Second read", "url": "https://news.example.com/second"}])
    both = [first["id"], second["id"]]
    now = clock.time
    clock.time = now - timedelta(hours=1)
    links.impressions(store, "links-over-time", "addr-1", both)
    links.click(store, first["id"], "addr-1")
    clock.time = now
    for address in ("addr-2", "addr-3"):
        links.impressions(store, "links-over-time", address, both)
    links.click(store, first["id"], "addr-2")
    links.click(store, second["id"], "addr-3")
    html = signed_in.get("/dashboard/articles/links-over-time").get_data(as_text=True)
    section = html[html.index('id="link-history"'):]
    assert 'aria-labelledby="links-chart-title"' in section
    chart = section[section.index("<svg"):section.index("</svg>")]
    assert chart.count("<rect") == 3
    assert "First read: 2 clicks" in section and "Second read: 1 click<" in section
    assert "3 clicks of 6 impressions in range (50.0% click-through)" in section
    hour = "%d %b %H:%M"
    this_hour = now.replace(minute=0).strftime(hour)
    earlier = (now - timedelta(hours=1)).replace(minute=0).strftime(hour)
    assert _table(section, "link-history-table") == [
        [this_hour, "First read", "1", "2", "50.0%"], [this_hour, "Second read", "1", "2", "50.0%"],
        [earlier, "First read", "1", "1", "100.0%"], [earlier, "Second read", "0", "1", "0.0%"]]
    # The stats API gives the same per link.
    points = client.get("/api/v1/articles/links-over-time/stats", headers=editor).json["points"]
    assert points[-1]["links"] == {first["id"]: {"clicks": 1, "impressions": 2},
                                   second["id"]: {"clicks": 1, "impressions": 2}}


def test_more_links_than_colours_chart_the_busiest_and_the_rest_together() -> None:
    from engage.web.charts import PALETTE
    from engage.web.history import link_history

    current = [{"id": f"l{n}", "title": f"Link {n}"} for n in range(8)]
    point = {"start": "2026-03-01T10:00:00+00:00", "clicks": 36, "impressions": 100,
             "links": {f"l{n}": {"clicks": n + 1, "impressions": 10} for n in range(8)}}
    shown = link_history({"bucket": "hour", "points": [point]}, current)
    assert [s["label"] for s in shown["legend"]] == [
        "Link 3", "Link 4", "Link 5", "Link 6", "Link 7", "Other links"]
    assert [s["total"] for s in shown["legend"]] == [4, 5, 6, 7, 8, 1 + 2 + 3]
    assert len({s["color"] for s in shown["legend"]}) == len(PALETTE)
