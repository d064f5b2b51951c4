"""Sites: admins define them through the API and the CLI; with none stored, the default
site is today's settings (docs/sites.md)."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from engage.cli import main
from engage.store import aggregates, tokens, windows
from tests.conftest import ARTICLE, new_reader
from tests.desk import Desk, field_error
from tests.redis_server import RedisServer
from tests.test_auth_matrix import PUBLIC, call, routes
from tests.test_ballot import BROWSER, path_for

NEWS = "https://news.example.com"
EMOJI = ["😀", "😂", "😮", "😢", "😡", "👍", "👎", "❤️"]
REGIONAL = {"name": "regional", "origins": ["https://regional.example.com"],
            "locale": "fr", "reactions": {"choices": EMOJI, "reason_choice": None,
                                          "reasons": []}}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"ALLOWED_ORIGINS": [NEWS + "/", "null"]}


def test_default_site_is_the_settings(client: FlaskClient, admin: dict[str, str]) -> None:
    response = client.get("/api/v1/sites", headers=admin)
    assert response.status_code == 200
    assert response.json == {"sites": [{
        "name": "default", "origins": [NEWS], "locale": "en",
        "reactions": {"choices": ["yes", "no"], "reason_choice": "no",
                      "reasons": ["outdated", "inaccurate", "biased", "unclear", "not_relevant"]},
        "links_shown": 4, "cache_max_age": 5, "cache_stale": 30,
    }]}


def test_create_get_update(client: FlaskClient, admin: dict[str, str], store: Any) -> None:
    created = client.post("/api/v1/sites", json=REGIONAL, headers=admin)
    assert created.status_code == 201, created.json
    assert created.json["reactions"]["choices"] == EMOJI
    assert created.json["links_shown"] == 4  # left out: the default's
    assert client.post("/api/v1/sites", json=REGIONAL, headers=admin).status_code == 409
    assert client.post("/api/v1/sites", json={"name": "default"},
                       headers=admin).json["error"]["code"] == "id_taken"

    changed = client.patch("/api/v1/sites/regional", json={"links_shown": 2}, headers=admin)
    assert changed.status_code == 200
    assert changed.json["links_shown"] == 2 and changed.json["locale"] == "fr"
    assert client.get("/api/v1/sites/regional", headers=admin).json == changed.json
    names = [s["name"] for s in client.get("/api/v1/sites", headers=admin).json["sites"]]
    assert names == ["default", "regional"]
    assert json.loads(store.redis.hget("engage:sites", "regional"))["links_shown"] == 2


def test_unknown_site(client: FlaskClient, admin: dict[str, str]) -> None:
    response = client.patch("/api/v1/sites/nowhere", json={"locale": "de"}, headers=admin)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "unknown_site"


@pytest.mark.parametrize("body", [
    {"name": "Bad Name"},
    {"name": "x", "origins": ["https://a.example.com/path"]},
    {"name": "x", "reactions": {"choices": ["yes"]}},
    {"name": "x", "reactions": {"choices": ["yes", "yes"]}},
    {"name": "x", "reactions": {"choices": ["a,b", "c"]}},
    {"name": "x", "reactions": {"choices": [str(n) for n in range(9)]}},
    {"name": "x", "reactions": {"choices": ["yes", "no"], "reason_choice": "maybe"}},
])
def test_bad_site_refused(client: FlaskClient, admin: dict[str, str], store: Any,
                          body: dict[str, Any]) -> None:
    response = client.post("/api/v1/sites", json=body, headers=admin)
    assert response.status_code == 422, response.json
    assert response.json["error"]["fields"]
    assert not store.redis.exists("engage:sites")


def test_editors_cannot_manage_sites(client: FlaskClient, editor: dict[str, str]) -> None:
    assert client.get("/api/v1/sites", headers=editor).status_code == 403
    assert client.post("/api/v1/sites", json=REGIONAL, headers=editor).status_code == 403


def test_cli(own_redis: RedisServer, tmp_path: Path) -> None:
    env = {name: None for name in os.environ if name.startswith("ENGAGE_")}
    env.update({"ENGAGE_REDIS_URL": own_redis.url, "ENGAGE_LOG_JSON": "0",
                "ENGAGE_SECRET_KEY": "cli-test-secret-long-enough"})

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    made = run("site", "create", "magazine", "--origins", "https://mag.example.com",
               "--choices", "yes,no,unsure", "--reason-choice", "no", "--reasons", "dull")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["reactions"]["choices"] == ["yes", "no", "unsure"]
    assert run("site", "create", "magazine").exit_code != 0
    assert run("site", "update", "magazine", "--links-shown", "9").exit_code == 0
    assert run("site", "update", "magazine", "--links-shown", "99").exit_code != 0
    assert run("site", "update", "nowhere", "--locale", "de").exit_code != 0
    listed = [json.loads(line) for line in run("site", "list").stdout.splitlines()]
    assert [s["name"] for s in listed] == ["default", "magazine"]
    assert listed[1]["links_shown"] == 9

    made = run("token", "create", "--name", "desk", "--role", "editor", "--site", "magazine")
    assert made.exit_code == 0, made.output
    assert "sites=magazine" in run("token", "list").stdout
    create = ("token", "create", "--name", "desk", "--role")
    assert run(*create, "editor", "--site", "nowhere").exit_code != 0
    assert run(*create, "admin", "--site", "magazine").exit_code != 0
    made = run(*create, "editor", "--site", "magazine", "--section", "magazine:culture")
    assert made.exit_code == 0, made.output
    assert "sections=magazine:culture" in run("token", "list").stdout
    assert run(*create, "editor", "--site", "magazine", "--section", "default:x").exit_code != 0
    assert run(*create, "editor", "--section", "culture").exit_code != 0


# -- articles belong to one site; CORS answers a site's origins for its articles ----------


@pytest.fixture
def regional(client: FlaskClient, admin: dict[str, str]) -> str:
    assert client.post("/api/v1/sites", json=REGIONAL, headers=admin).status_code == 201
    return "regional"


def put_article(client: FlaskClient, editor: dict[str, str], article_id: str,
                **fields: Any) -> Any:
    return client.put(f"/api/v1/articles/{article_id}", json={**ARTICLE, **fields},
                      headers=editor)


def test_articles_belong_to_one_site(client: FlaskClient, editor: dict[str, str],
                                     regional: str, store: Any) -> None:
    assert put_article(client, editor, "home").json["site"] == "default"
    assert not store.redis.hexists("engage:a:{home}", "site")  # as before sites
    placed = put_article(client, editor, "local", site=regional)
    assert placed.status_code == 201 and placed.json["site"] == regional
    # A PUT that leaves the site out keeps it.
    assert put_article(client, editor, "local").json["site"] == regional
    assert client.get("/api/v1/articles/local").json["site"] == regional

    refused = put_article(client, editor, "elsewhere", site="nowhere")
    assert refused.status_code == 422
    assert refused.json["error"]["fields"] == {"site": ["No site exists under this name."]}
    assert not store.redis.exists("engage:a:{elsewhere}")


def cors(response: Any) -> str | None:
    value: str | None = response.headers.get("Access-Control-Allow-Origin")
    return value


def test_cors_per_site(client: FlaskClient, editor: dict[str, str], regional: str) -> None:
    put_article(client, editor, "home")
    put_article(client, editor, "local", site=regional)
    local = REGIONAL["origins"][0]
    for path in ["/api/v1/articles/{}/reactions", "/api/v1/widget?article={}"]:
        assert cors(client.get(path.format("home"), headers={"Origin": NEWS})) == NEWS
        assert cors(client.get(path.format("local"), headers={"Origin": local})) == local
        assert cors(client.get(path.format("home"), headers={"Origin": local})) is None
        assert cors(client.get(path.format("local"), headers={"Origin": NEWS})) is None
    preflight = client.options("/api/v1/articles/home/reactions/mine", headers={
        "Origin": local, "Access-Control-Request-Method": "PUT"})
    assert cors(preflight) is None
    # One page may not read another site's article alongside its own.
    both = client.get("/api/v1/widget?article=local&article=home", headers={"Origin": local})
    assert cors(both) is None
    # Minting a reader token names no article: every site's origin may.
    assert cors(client.post("/api/v1/readers", headers={"Origin": local})) == local


def test_site_origins_change_while_running(client: FlaskClient, editor: dict[str, str],
                                           admin: dict[str, str], regional: str,
                                           store: Any) -> None:
    put_article(client, editor, "local", site=regional)
    added = "https://m.regional.example.com"
    assert cors(client.get("/api/v1/articles/local", headers={"Origin": added})) is None
    client.patch(f"/api/v1/sites/{regional}", json={"origins": [added]}, headers=admin)
    assert cors(client.get("/api/v1/articles/local", headers={"Origin": added})) == added


def test_reads_use_their_sites_locale_and_cache_lifetimes(
        client: FlaskClient, editor: dict[str, str], admin: dict[str, str],
        regional: str) -> None:
    client.patch(f"/api/v1/sites/{regional}", json={"cache_max_age": 2, "cache_stale": 9},
                 headers=admin)
    put_article(client, editor, "home")
    put_article(client, editor, "local", site=regional)
    client.post("/api/v1/polls", json={"question": "Q?", "options": ["a", "b"],
                                       "article": "local", "id": "local-poll"}, headers=editor)
    default, local = "public, max-age=5, stale-while-revalidate=30", \
        "public, max-age=2, stale-while-revalidate=9"
    for path, expected in [
        ("/api/v1/articles/home/reactions", default),
        ("/api/v1/articles/local/reactions", local),
        ("/api/v1/widget?article=home", default),
        ("/api/v1/widget?article=local", local),
        ("/api/v1/reactions?article=home&article=nowhere", default),
        ("/api/v1/polls/local-poll", local),
        ("/api/v1/articles/local/polls", local),
    ]:
        assert client.get(path).headers["Cache-Control"] == expected, path
    # A batch of several sites' articles: the shortest of their lifetimes.
    client.patch(f"/api/v1/sites/{regional}", json={"cache_max_age": 60}, headers=admin)
    both = client.get("/api/v1/reactions?article=home&article=local")
    assert both.headers["Cache-Control"] == "public, max-age=5, stale-while-revalidate=9"

    assert client.get("/api/v1/widget?article=home").json["locale"] == "en"
    assert client.get("/api/v1/widget?article=local").json["locale"] == "fr"
    assert client.get("/api/v1/widget?article=nowhere&article=local").json["locale"] == "fr"


# -- reaction sets by site, an article's own set, counts kept by choice name --------------
def vote(client: FlaskClient, article_id: str, reader: dict[str, str], **body: Any) -> Any:
    return client.put(f"/api/v1/articles/{article_id}/reactions/mine", json=body,
                      headers=reader)


def test_emoji_set_of_eight(client: FlaskClient, editor: dict[str, str],
                            regional: str) -> None:
    put_article(client, editor, "local", site=regional)
    for n, choice in enumerate(EMOJI):
        for _ in range(n % 3):
            assert vote(client, "local", new_reader(client), choice=choice).status_code == 200
    counts = client.get("/api/v1/articles/local/reactions").json["counts"]
    assert list(counts) == EMOJI  # display order
    assert counts == {c: n % 3 for n, c in enumerate(EMOJI)}
    bundle = client.get("/api/v1/widget?article=local").json
    assert bundle["articles"]["local"]["reaction_set"]["choices"] == EMOJI


def test_another_sites_choice_is_refused(client: FlaskClient, editor: dict[str, str],
                                        regional: str, store: Any) -> None:
    put_article(client, editor, "home")
    put_article(client, editor, "local", site=regional)
    reader = new_reader(client)
    assert vote(client, "local", reader, choice="😀").status_code == 200
    before = {key: store.redis.dump(key) for key in store.redis.keys("*")}

    refused = vote(client, "home", reader, choice="😀")
    assert refused.status_code == 422
    assert refused.json["error"]["fields"] == {"choice": ["Must be one of: yes, no."]}
    refused = vote(client, "local", reader, choice="yes")
    assert refused.json["error"]["fields"]["choice"][0].startswith("Must be one of: 😀, 😂")
    refused = vote(client, "local", reader, choice="😀", reason="outdated")
    assert refused.json["error"]["fields"] == {
        "reason": ["This article's choices take no reason."]}
    refused = vote(client, "home", reader, choice="yes", reason="outdated")
    assert refused.json["error"]["fields"] == {"reason": ["Only a 'no' may carry a reason."]}
    refused = vote(client, "home", reader, choice="no", reason="dull")
    assert refused.status_code == 422 and "reason" in refused.json["error"]["fields"]
    assert {key: store.redis.dump(key) for key in store.redis.keys("*")} == before


def test_an_article_may_have_its_own_set(client: FlaskClient, editor: dict[str, str]) -> None:
    quiz = {"choices": ["🔥", "🧊"], "reason_choice": None, "reasons": []}
    assert put_article(client, editor, "quiz", reaction_set=quiz).json["reaction_set"] == quiz
    reader = new_reader(client)
    assert vote(client, "quiz", reader, choice="yes").status_code == 422
    assert vote(client, "quiz", reader, choice="🔥").json["counts"] == {"🔥": 1, "🧊": 0}
    # Left out, the set is kept; null returns to the site's, keeping the counts by name.
    assert put_article(client, editor, "quiz").json["reaction_set"] == quiz
    back = put_article(client, editor, "quiz", reaction_set=None).json["reaction_set"]
    assert back["choices"] == ["yes", "no"]
    assert client.get("/api/v1/articles/quiz").json["reactions"]["counts"] == {"yes": 0, "no": 0}
    assert vote(client, "quiz", new_reader(client), choice="🔥").status_code == 422


def test_the_article_table_shows_an_own_sets_counts(client: FlaskClient,
                                                    editor: dict[str, str], desk: Any,
                                                    catch_up: Any) -> None:
    quiz = {"choices": ["🔥", "🧊"], "reason_choice": None, "reasons": []}
    put_article(client, editor, "quiz", reaction_set=quiz)
    vote(client, "quiz", new_reader(client), choice="🔥")
    catch_up()
    page = desk.get("/dashboard?q=quiz").get_data(as_text=True)
    row = page[page.index('<tr data-article="quiz">'):]
    row = row[:row.index("</tr>")]
    # The site's columns have nothing to say of it; its own counts are named instead.
    assert "Its own set: 🔥 1 · 🧊 0" in row
    assert row.count('<td class="num">–</td>') == 2


def test_changing_a_set_moves_no_count(client: FlaskClient, editor: dict[str, str],
                                       admin: dict[str, str], store: Any,
                                       catch_up: Any) -> None:
    put_article(client, editor, "home")
    for choice in ["yes", "yes", "no"]:
        vote(client, "home", new_reader(client), choice=choice)
    changed = {"reactions": {"choices": ["yes", "no", "unsure"], "reason_choice": "no",
                             "reasons": ["outdated"]}}
    assert client.patch("/api/v1/sites/default", json=changed, headers=admin).status_code == 200
    assert client.get("/api/v1/articles/home/reactions").json["counts"] == {
        "yes": 2, "no": 1, "unsure": 0}
    assert vote(client, "home", new_reader(client), choice="unsure").status_code == 200
    bundle = client.get("/api/v1/widget?article=home").json
    assert bundle["choices"] == ["yes", "no", "unsure"]
    assert "reaction_set" not in bundle["articles"]["home"]  # the bundle's own

    # "no" retired: hidden from the counts, kept in Redis, in stats and exports.
    retired = {"reactions": {"choices": ["yes", "unsure"]}}
    client.patch("/api/v1/sites/default", json=retired, headers=admin)
    assert client.get("/api/v1/articles/home/reactions").json["counts"] == {
        "yes": 2, "unsure": 1}
    assert store.redis.hget("engage:a:{home}:counts", "no") == "1"
    export = client.get("/api/v1/events/export?format=ndjson", headers=editor)
    assert sum('"choice": "no"' in line or '"choice":"no"' in line
               for line in export.get_data(as_text=True).splitlines()) == 1


# -- scoped staff: an editor of one site gets 403 on another's ----------------------------
@pytest.fixture
def scoped_token(store: Any, regional: str) -> str:
    return tokens.create(store, "editor", "regional desk", [regional])[0]


ADMINS_ONLY = {("/api/v1/polls/<eid:poll_id>", "DELETE"),
               ("/dashboard/polls/<eid:poll_id>/delete", "GET"),
               ("/dashboard/polls/<eid:poll_id>/delete", "POST")}


def test_scoped_editor_is_refused_on_another_sites_routes(
        app: Flask, client: FlaskClient, editor: dict[str, str], admin: dict[str, str],
        scoped_token: str) -> None:
    put_article(client, editor, "home")
    put_article(client, editor, "local", site="regional")
    made = {}
    for article_id in ("home", "local"):
        poll = {"question": "Agreed?", "options": ["Yes", "No"], "article": article_id}
        made[article_id] = client.post("/api/v1/polls", json=poll, headers=admin).json["id"]
    scoped = {"Authorization": f"Bearer {scoped_token}"}
    desk = Desk(app.test_client(), scoped_token)

    checked = []
    for rule, method, _ in routes(app):
        if (rule, method) in PUBLIC or not re.search(r"<eid:(article|poll)_id>", rule):
            continue
        answers = {}
        for article_id in ("home", "local"):
            path = rule.replace("<eid:article_id>", article_id).replace(
                "<eid:poll_id>", made[article_id])
            if path.startswith("/api/"):
                answers[article_id] = call(client, method, path, scoped).status_code
            else:
                page = desk.get(path) if method == "GET" else desk.post(path, {})
                answers[article_id] = page.status_code
        assert answers["home"] == 403, (rule, method, answers)
        if (rule, method) not in ADMINS_ONLY:
            assert answers["local"] != 403, (rule, method, answers)
        checked.append((rule, method))
    assert len(checked) >= 12, checked

    # Writes that name a site, or an article, of another site.
    assert put_article(client, scoped, "new-home").status_code == 403
    assert put_article(client, scoped, "local", site="default").status_code == 403
    assert put_article(client, scoped, "new-local", site="regional").status_code == 201
    poll = {"question": "Agreed?", "options": ["Yes", "No"], "article": "home"}
    assert client.post("/api/v1/polls", json=poll, headers=scoped).status_code == 403
    page = desk.post("/dashboard/polls/new", {"question": "Agreed?", "option": ["Yes", "No"],
                                              "article": "home", "results": "always"})
    assert page.status_code == 403
    export = client.get("/api/v1/events/export?article=home", headers=scoped)
    assert export.status_code == 403


def test_scoped_lists_show_their_sites_only(
        app: Flask, client: FlaskClient, editor: dict[str, str], admin: dict[str, str],
        scoped_token: str, catch_up: Any) -> None:
    put_article(client, editor, "home")
    put_article(client, editor, "local", site="regional")
    for article_id in ("home", "local"):
        poll = {"question": f"On {article_id}?", "options": ["Yes", "No"], "article": article_id}
        client.post("/api/v1/polls", json=poll, headers=admin)
    vote(client, "home", new_reader(client), choice="yes")
    vote(client, "local", new_reader(client), choice="😀")
    catch_up()
    scoped = {"Authorization": f"Bearer {scoped_token}"}

    polls_seen = client.get("/api/v1/polls", headers=scoped).json["polls"]
    assert [p["article"] for p in polls_seen] == ["local"]
    ranked = client.get("/api/v1/stats/articles", headers=scoped).json["articles"]
    assert [row["id"] for row in ranked] == ["local"]
    export = client.get("/api/v1/events/export?format=ndjson", headers=scoped)
    assert {json.loads(line)["article"] for line in export.get_data(as_text=True).split()} \
        == {"local"}
    # Section and site figures are kept per site: theirs, never another's.
    sections = client.get("/api/v1/stats/sections", headers=scoped).json
    assert sections["site"] == "regional"
    assert [(r["section"], r["total"]) for r in sections["sections"]] == [("Diplomacy", 1)]
    for path in ("/api/v1/stats/sections?site=default", "/api/v1/stats/articles?site=default"):
        assert client.get(path, headers=scoped).status_code == 403, path
    desk = Desk(app.test_client(), scoped_token)
    assert desk.get("/dashboard/live").status_code == 200
    live = desk.get("/dashboard/live.json").json
    assert [a["id"] for a in live["articles"]] == ["local"]
    assert live["totals"]["counts"]["😀"] == 1 and "yes" not in live["totals"]["counts"]
    assert {e["article"] for e in live["events"]} == {"local"}
    assert desk.get("/dashboard/live.json?site=default").status_code == 404
    overview = desk.get("/dashboard")  # their site's articles and figures
    assert overview.status_code == 200
    page = overview.get_data(as_text=True)
    assert "/dashboard/articles/local" in page and "/dashboard/articles/home" not in page
    assert 'aria-label="Totals"' in page and "1 😀" in page
    page = desk.get("/dashboard/polls").get_data(as_text=True)
    assert "On local?" in page and "On home?" not in page
    exported = desk.get("/dashboard/export?format=ndjson").get_data(as_text=True)
    assert {json.loads(line)["article"] for line in exported.split()} == {"local"}

    # Admins, and editors not limited to sites, see all.
    for who in (admin, editor):
        seen = client.get("/api/v1/polls", headers=who).json["polls"]
        assert sorted(p["article"] for p in seen) == ["home", "local"]
        assert client.get("/api/v1/stats/sections", headers=who).status_code == 200


def test_only_editor_tokens_take_sites(store: Any) -> None:
    with pytest.raises(ValueError, match="only editor tokens"):
        tokens.create(store, "admin", "x", ["regional"])


def test_article_stats_follow_its_set(client: FlaskClient, editor: dict[str, str],
                                      admin: dict[str, str], regional: str) -> None:
    put_article(client, editor, "local", site=regional)
    poll = {"question": "Agreed?", "options": ["Yes", "No"], "article": "local"}
    made = client.post("/api/v1/polls", json=poll, headers=admin).json
    client.put(f"/api/v1/polls/{made['id']}/votes/mine", headers=new_reader(client),
               json={"options": [made["options"][0]["id"]]})
    vote(client, "local", new_reader(client), choice="😀")
    moved = new_reader(client)
    vote(client, "local", moved, choice="😀")
    vote(client, "local", moved, choice="😂")
    series = client.get("/api/v1/articles/local/stats", headers=editor).json
    assert series["choices"] == EMOJI
    assert sum(p["added"]["😀"] for p in series["points"]) == 2
    # A retired choice stays in the article's stats.
    client.patch(f"/api/v1/sites/{regional}", headers=admin,
                 json={"reactions": {"choices": ["👍", "👎"]}})
    series = client.get("/api/v1/articles/local/stats", headers=editor).json
    assert series["choices"] == ["👍", "👎", "😀", "😂"]
    assert sum(p["added"]["😀"] - p["removed"]["😀"] for p in series["points"]) == 1


def test_related_links_stay_in_the_site(client: FlaskClient, editor: dict[str, str],
                                        admin: dict[str, str], regional: str) -> None:
    client.patch(f"/api/v1/sites/{regional}", json={"links_shown": 2}, headers=admin)
    for n in range(4):
        put_article(client, editor, f"home-{n}")
        put_article(client, editor, f"local-{n}", site=regional)
    for reader_path in ("/api/v1/articles/{}/links", "/api/v1/widget?article={}"):
        answer = client.get(reader_path.format("local-0")).json
        found = answer.get("links") or answer["articles"]["local-0"]["links"]
        ids = [link["id"] for link in found]
        assert len(ids) == 2 and all(i.startswith("article:local-") for i in ids), ids
        answer = client.get(reader_path.format("home-0")).json
        found = answer.get("links") or answer["articles"]["home-0"]["links"]
        assert {link["id"] for link in found} == {f"article:home-{n}" for n in (1, 2, 3)}


def test_newsletter_links_offer_the_articles_set(client: FlaskClient,
                                                 editor: dict[str, str]) -> None:
    quiz = {"choices": ["🔥", "🧊"], "reason_choice": None, "reasons": []}
    put_article(client, editor, "quiz", reaction_set=quiz)
    links = client.get("/api/v1/articles/quiz/email-links", headers=editor).json["links"]
    assert [link["choice"] for link in links] == ["🔥", "🧊"]
    assert client.post(path_for(links[0]["url"], "sub-1"), headers=BROWSER).status_code == 303
    assert client.get("/api/v1/articles/quiz/reactions").json["counts"] == {"🔥": 1, "🧊": 0}


def test_default_site_name_is_checked() -> None:
    from engage.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="ENGAGE_DEFAULT_SITE"):
        load_config({"ENGAGE_DEFAULT_SITE": "The Daily"})
    assert load_config({"ENGAGE_DEFAULT_SITE": "daily"})["DEFAULT_SITE"] == "daily"


def test_dashboard_site_switcher(app: Flask, client: FlaskClient, editor: dict[str, str],
                                 admin_token: str, scoped_token: str, catch_up: Any) -> None:
    put_article(client, editor, "home")
    put_article(client, editor, "local", site="regional")
    vote(client, "home", new_reader(client), choice="yes")
    vote(client, "local", new_reader(client), choice="😀")
    catch_up()
    desk = Desk(app.test_client(), admin_token)
    page = desk.get("/dashboard").get_data(as_text=True)
    assert 'id="site-switcher"' in page and "site=regional" in page
    # Figures are kept per site: the default site's first, then the one switched to.
    assert "/dashboard/articles/home" in page and "/dashboard/articles/local" not in page
    one = desk.get("/dashboard?site=regional").get_data(as_text=True)
    assert "/dashboard/articles/local" in one and "/dashboard/articles/home" not in one
    assert 'aria-label="Totals"' in one and "1 😀" in one
    assert "range=24h&amp;sort=approval&amp;site=regional" in one  # the choice is kept
    assert desk.get("/dashboard?site=nowhere").status_code == 404
    # One site only: nothing to switch, and no other site to name.
    limited = Desk(app.test_client(), scoped_token)
    assert 'id="site-switcher"' not in limited.get("/dashboard").get_data(as_text=True)
    assert limited.get("/dashboard?site=default").status_code == 404


# -- the dashboard: admins list, create and edit sites; the article form names its site ----
def test_dashboard_sites_page(app: Flask, admin_desk: Desk, desk: Desk,
                              admin: dict[str, str], client: FlaskClient) -> None:
    page = admin_desk.get("/dashboard/admin/sites")
    assert page.status_code == 200
    assert 'data-site="default"' in page.get_data(as_text=True)
    # Fields left blank are the default site's; lists typed with commas or spaces.
    made = admin_desk.post("/dashboard/admin/sites", {
        "name": "regional", "origins": "https://regional.example.com, https://m.regional.example.com",
        "locale": "fr", "choices": "😀, 😂 😮,😢,😡", "reason_choice": "", "reasons": "",
        "links_shown": "2", "cache_max_age": "", "cache_stale": ""})
    assert made.status_code == 302, made.get_data(as_text=True)
    site = client.get("/api/v1/sites/regional", headers=admin).json
    assert site["origins"] == ["https://regional.example.com", "https://m.regional.example.com"]
    assert site["reactions"] == {"choices": ["😀", "😂", "😮", "😢", "😡"],
                                 "reason_choice": None, "reasons": []}
    assert (site["links_shown"], site["cache_max_age"], site["locale"]) == (2, 5, "fr")
    listed = admin_desk.get("/dashboard/admin/sites").get_data(as_text=True)
    assert 'data-site="regional"' in listed and "😀 😂 😮 😢 😡" in listed

    # The API's rules, shown by the fields they name; nothing stored.
    for form, field, message in [
        ({"name": "regional"}, "name", "A site exists under this name."),
        ({"name": "Bad Name"}, "name", ""),
        ({"name": "x", "origins": "https://x.example.com/path"}, "origins", "Origin 1: An origin"),
        ({"name": "x", "choices": "yes"}, "choices", "Length must be between 2 and 8."),
        ({"name": "x", "choices": "yes,no", "reason_choice": "maybe"}, "reason_choice",
         "Must be one of the choices, or null."),
        ({"name": "x", "cache_max_age": "soon"}, "cache_max_age", "Not a valid integer."),
    ]:
        refused = admin_desk.post("/dashboard/admin/sites", form)
        assert refused.status_code == 422, form
        assert message in field_error(refused.get_data(as_text=True), field), form
        assert field_error(refused.get_data(as_text=True), field)
    assert len(client.get("/api/v1/sites", headers=admin).json["sites"]) == 2

    edit = admin_desk.get("/dashboard/admin/sites/regional").get_data(as_text=True)
    assert 'value="😀, 😂, 😮, 😢, 😡"' in edit and 'name="name"' not in edit
    saved = admin_desk.post("/dashboard/admin/sites/regional", {
        "origins": "https://regional.example.com", "locale": "de", "choices": "👍,👎",
        "reason_choice": "👎", "reasons": "dull", "links_shown": "3",
        "cache_max_age": "7", "cache_stale": "11"})
    assert saved.status_code == 302
    site = client.get("/api/v1/sites/regional", headers=admin).json
    assert site["reactions"] == {"choices": ["👍", "👎"], "reason_choice": "👎",
                                 "reasons": ["dull"]}
    assert (site["locale"], site["cache_max_age"], site["cache_stale"]) == ("de", 7, 11)
    bad = admin_desk.post("/dashboard/admin/sites/regional", {"locale": "not a tag"})
    assert bad.status_code == 422 and field_error(bad.get_data(as_text=True), "locale")
    assert admin_desk.get("/dashboard/admin/sites/nowhere").status_code == 404

    # Editors are refused, and a post without the CSRF token changes nothing.
    assert desk.get("/dashboard/admin/sites").status_code == 403
    assert desk.post("/dashboard/admin/sites", {"name": "mine"}).status_code == 403
    forged = admin_desk.client.post("/dashboard/admin/sites", data={"name": "forged"})
    assert forged.status_code in (400, 403)
    assert admin_desk.get("/dashboard/admin/sites/forged").status_code == 404


def test_article_form_names_its_site_and_own_set(
        app: Flask, admin_desk: Desk, client: FlaskClient, editor: dict[str, str],
        scoped_token: str) -> None:
    form = {"title": "Local news", "url": "https://regional.example.com/a", "section": "city",
            "published_at": "2026-12-01T10:00", "tz": "UTC", "tags": ""}
    new = admin_desk.get("/dashboard/articles/new").get_data(as_text=True)
    assert '<option value="default" selected>' in new and '<option value="regional">' in new
    made = admin_desk.post("/dashboard/articles/new", {
        **form, "id": "local", "site": "regional", "choices": "🔥 🧊"})
    assert made.status_code == 302, made.get_data(as_text=True)
    article = client.get("/api/v1/articles/local").json
    assert article["site"] == "regional"
    assert article["reaction_set"] == {"choices": ["🔥", "🧊"], "reason_choice": None,
                                       "reasons": []}
    edit = admin_desk.get("/dashboard/articles/local/edit").get_data(as_text=True)
    assert 'value="🔥, 🧊"' in edit and '<option value="regional" selected>' in edit
    # No choice typed: back to its site's set.
    assert admin_desk.post("/dashboard/articles/local/edit",
                           {**form, "site": "regional"}).status_code == 302
    assert client.get("/api/v1/articles/local").json["reaction_set"]["choices"] == EMOJI
    refused = admin_desk.post("/dashboard/articles/new", {**form, "id": "x", "site": "nowhere"})
    assert refused.status_code == 422
    assert field_error(refused.get_data(as_text=True), "site") == "No site exists under this name."
    refused = admin_desk.post("/dashboard/articles/new", {**form, "id": "x", "choices": "a"})
    assert refused.status_code == 422 and field_error(refused.get_data(as_text=True), "choices")

    # A scoped editor is offered their sites only, and may not place one elsewhere.
    limited = Desk(app.test_client(), scoped_token)
    offered = limited.get("/dashboard/articles/new").get_data(as_text=True)
    assert '<option value="regional" selected>' in offered and 'value="default"' not in offered
    assert limited.post("/dashboard/articles/new",
                        {**form, "id": "y", "site": "regional"}).status_code == 302
    assert limited.post("/dashboard/articles/new",
                        {**form, "id": "z", "site": "default"}).status_code == 403
    assert client.get("/api/v1/articles/z").status_code == 404


# -- figures across articles are kept per site, each article by its own set ---------------
FIVE = ["😀", "😮", "😢", "😡", "👍"]


@pytest.fixture
def two_sites(client: FlaskClient, editor: dict[str, str], admin: dict[str, str],
              catch_up: Any, clock: Any) -> dict[str, dict[str, dict[str, int]]]:
    """The default site (yes/no) and a magazine (five emoji) with a section of the same
    name each, and an article of the magazine with its own set; votes applied."""
    magazine = {"name": "magazine", "origins": ["https://magazine.example.com"],
                "reactions": {"choices": FIVE, "reason_choice": None, "reasons": []}}
    assert client.post("/api/v1/sites", json=magazine, headers=admin).status_code == 201
    own = {"choices": ["🔥", "🧊"], "reason_choice": None, "reasons": []}
    layout = {"d1": ("default", "politics", None), "d2": ("default", "politics", None),
              "d3": ("default", "sport", None), "m1": ("magazine", "politics", None),
              "m2": ("magazine", "culture", None), "m3": ("magazine", "culture", own)}
    votes = {"d1": {"yes": 3, "no": 1}, "d2": {"yes": 1, "no": 2}, "d3": {"yes": 2},
             "m1": {"😀": 2, "😡": 1}, "m2": {"😮": 3}, "m3": {"🔥": 2}}
    for article_id, (site, section, reaction_set) in layout.items():
        assert put_article(client, editor, article_id, site=site, section=section,
                           reaction_set=reaction_set).status_code == 201
        for choice, n in votes[article_id].items():
            for _ in range(n):
                assert vote(client, article_id, new_reader(client),
                            choice=choice).status_code == 200
    catch_up()
    return votes


def ranked(client: FlaskClient, who: dict[str, str], query: str) -> list[tuple[str, Any]]:
    body = client.get("/api/v1/stats/articles?" + query, headers=who).json
    return [(row["id"], row["approval"]) for row in body["articles"]]


def test_rankings_and_sections_are_per_site(
        client: FlaskClient, admin: dict[str, str], scoped_token: str, two_sites: Any,
        store: Any, clock: Any) -> None:
    # Each article's approval is its own set's first choice's share (m3: 🔥 of 🔥/🧊),
    # ranked by the Wilson lower bound: 2 of 2 (0.34) above 3 of 4 (0.30) and 2 of 3.
    assert ranked(client, admin, "site=magazine") == [("m3", 1.0), ("m1", 2 / 3), ("m2", 0.0)]
    assert ranked(client, admin, "site=magazine&sort=votes") == [
        ("m1", 2 / 3), ("m2", 0.0), ("m3", 1.0)]
    assert ranked(client, admin, "") == [("d3", 1.0), ("d1", 0.75), ("d2", 1 / 3)]
    assert ranked(client, admin, "site=default&section=politics") == [
        ("d1", 0.75), ("d2", 1 / 3)]
    assert ranked(client, admin, "site=magazine&section=politics") == [("m1", 2 / 3)]
    body = client.get("/api/v1/stats/articles?site=magazine", headers=admin).json
    assert body["site"] == "magazine" and body["total"] == 3
    assert body["articles"][1]["counts"] == {"😀": 2, "😮": 0, "😢": 0, "😡": 1, "👍": 0}
    assert body["articles"][0]["counts"] == {"🔥": 2, "🧊": 0}

    def sections(site: str) -> dict[str, tuple[int, int, dict[str, int], Any]]:
        body = client.get(f"/api/v1/stats/sections?site={site}", headers=admin).json
        assert body["site"] == site
        return {r["section"]: (r["articles"], r["total"], r["counts"], r["approval"])
                for r in body["sections"]}

    assert sections("default") == {"politics": (2, 7, {"yes": 4, "no": 3}, 4 / 7),
                                   "sport": (1, 2, {"yes": 2, "no": 0}, 1.0)}
    # The magazine's own "politics"; m3's set shares no choice with its site's.
    assert sections("magazine") == {
        "politics": (1, 3, {"😀": 2, "😮": 0, "😢": 0, "😡": 1, "👍": 0}, 2 / 3),
        "culture": (2, 3, {"😀": 0, "😮": 3, "😢": 0, "😡": 0, "👍": 0}, 0.0)}
    # A limited editor gets their site's by default, and 422 for a site that is none.
    scoped = {"Authorization": f"Bearer {scoped_token}"}
    assert client.get("/api/v1/stats/sections", headers=scoped).json["site"] == "regional"
    assert client.get("/api/v1/stats/sections?site=nowhere",
                      headers=admin).status_code == 422

    # The same rankings over a rolling window (7d) and over any other range (summed).
    now = clock()
    for since in (now - timedelta(days=7), now - timedelta(hours=3)):
        query = "site=magazine&since=" + since.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert [a for a, _ in ranked(client, admin, query)] == ["m3", "m1", "m2"]
    assert windows.serving(store, windows.current(store, now)["7d"], now,
                           store.keys.agg_site("magazine", "default")) is not None


def test_trending_and_totals_are_per_site(client: FlaskClient, admin_token: str,
                                          app: Flask, two_sites: Any) -> None:
    desk = Desk(app.test_client(), admin_token)
    for site, ids, total in (("default", {"d1", "d2", "d3"}, 9),
                             ("magazine", {"m1", "m2", "m3"}, 6)):
        live = desk.get(f"/dashboard/live.json?site={site}").json
        assert {a["id"] for a in live["articles"]} == ids
        assert live["totals"]["total"] == total
    page = desk.get("/dashboard?site=magazine").get_data(as_text=True)
    assert "2 😀 · 3 😮 · 0 😢 · 1 😡 · 0 👍" in page
    # The section filter offers the site's sections: the magazine has no "sport".
    assert "<option>culture</option>" in page and "<option>sport</option>" not in page
    assert "<option>sport</option>" in desk.get("/dashboard").get_data(as_text=True)


# -- editor scopes may name sections within a site ----------------------------------------
def test_a_token_limited_to_sections(app: Flask, client: FlaskClient, editor: dict[str, str],
                                     admin: dict[str, str], store: Any,
                                     two_sites: Any) -> None:
    with pytest.raises(ValueError, match="within the token's sites"):
        tokens.create(store, "editor", "x", ["default"], sections={"magazine": ["culture"]})
    token = tokens.create(store, "editor", "culture desk", ["magazine"],
                          sections={"magazine": ["culture"]})[0]
    desk = {"Authorization": f"Bearer {token}"}
    # Articles of other sections (of their site, or of another) are not theirs.
    assert client.get("/api/v1/articles/m1/stats", headers=desk).status_code == 403
    assert client.get("/api/v1/articles/d1/stats", headers=desk).status_code == 403
    assert client.get("/api/v1/articles/m2/stats", headers=desk).status_code == 200
    assert put_article(client, desk, "m1", site="magazine",
                       section="culture").status_code == 403  # moving one in
    assert put_article(client, desk, "m2", site="magazine",
                       section="politics").status_code == 403  # moving one out
    assert put_article(client, desk, "m4", site="magazine",
                       section="politics").status_code == 403  # a new one elsewhere
    assert put_article(client, desk, "m4", site="magazine",
                       section="culture").status_code == 201
    poll = {"question": "Culture?", "options": ["Yes", "No"], "article": "m1"}
    assert client.post("/api/v1/polls", json=poll, headers=desk).status_code == 403
    # Lists and figures: their sections only.
    assert {a for a, _ in ranked(client, desk, "")} == {"m2", "m3"}
    body = client.get("/api/v1/stats/sections", headers=desk).json
    assert [r["section"] for r in body["sections"]] == ["culture"]
    export = client.get("/api/v1/events/export?format=ndjson", headers=desk)
    assert {json.loads(line)["article"] for line in export.get_data(as_text=True).split()} \
        == {"m2", "m3", "m4"}
    page = Desk(app.test_client(), token).get("/dashboard").get_data(as_text=True)
    assert "/dashboard/articles/m2" in page and "/dashboard/articles/m1" not in page
    assert "0 😀 · 3 😮" in page  # the totals of their section
    assert "<option>culture</option>" in page and "<option>politics</option>" not in page
    assert Desk(app.test_client(), token).get("/dashboard/articles/m1").status_code == 403


def test_a_rebuild_and_a_changed_set_keep_each_sites_figures(
        client: FlaskClient, admin: dict[str, str], store: Any, two_sites: Any,
        catch_up: Any) -> None:
    def seen() -> list[Any]:
        return [client.get(path, headers=admin).json for path in (
            "/api/v1/stats/articles?site=magazine", "/api/v1/stats/articles?site=default",
            "/api/v1/stats/sections?site=magazine", "/api/v1/stats/sections?site=default")]

    before = seen()
    assert aggregates.rebuild(store) > 0
    assert seen() == before  # replayed from the streams, each article into its site's
    # The magazine retires 😡 and adds 🤔: counts by name, the retired one's history kept.
    new_set = {"choices": ["😀", "😮", "🤔"], "reason_choice": None, "reasons": []}
    assert client.patch("/api/v1/sites/magazine", json={"reactions": new_set},
                        headers=admin).status_code == 200
    assert vote(client, "m1", new_reader(client), choice="🤔").status_code == 200
    catch_up()
    rows = {row["id"]: row for row in seen()[0]["articles"]}
    assert rows["m1"]["counts"] == {"😀": 2, "😮": 0, "🤔": 1}
    assert rows["m1"]["approval"] == 2 / 3
    series = client.get("/api/v1/articles/m1/stats?bucket=day", headers=admin).json
    assert series["choices"] == ["😀", "😮", "🤔", "😡"]
    assert sum(p["added"]["😡"] for p in series["points"]) == 1
    assert seen()[1:4:2] == before[1:4:2]  # the default site's untouched
