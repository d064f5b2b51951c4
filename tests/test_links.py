"""Related links: curation, related fill-in, the counting redirect, impressions, the bundle."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from engage import seeds
from engage.store import budgets, get_store, links, tokens
from tests.conftest import ARTICLE, make_app, new_reader
from tests.redis_server import RedisServer

LINKS = [
    {"title": "Policy Link", "url": "https://news.example.com/policy/korea-china-relations"},
    {"title": "Buoys explained", "url": "https://news.example.com/diplomacy/buoys"},
]


def put_links(client: FlaskClient, editor: dict[str, str], items: Any,
              article: str = "korea-china-reset") -> Any:
    return client.put(f"/api/v1/articles/{article}/links", json=items, headers=editor)


def add_article(
    client: FlaskClient, editor: dict[str, str], article_id: str, **fields: Any
) -> None:
    body = {**ARTICLE, "url": f"https://news.example.com/{article_id}", **fields}
    response = client.put(f"/api/v1/articles/{article_id}", json=body, headers=editor)
    assert response.status_code in (200, 201), response.json


def vote(client: FlaskClient, article_id: str, choice: str, n: int) -> None:
    for _ in range(n):
        response = client.put(f"/api/v1/articles/{article_id}/reactions/mine",
                              json={"choice": choice}, headers=new_reader(client))
        assert response.status_code == 200, response.json


@pytest.fixture
def app_config() -> dict[str, Any]:
    # Many readers vote from one test address in these tests.
    return {"THROTTLE_VOTES": 1000, "READER_MINT_LIMIT": "1000 per minute"}


def test_editor_sets_links_with_server_ids(client, editor, article, store):
    response = put_links(client, editor, LINKS)
    assert response.status_code == 200, response.json
    body = response.json["links"]
    assert [link["title"] for link in body] == ["Policy Link", "Buoys explained"]
    for link in body:
        assert link["id"].startswith("l") and len(link["id"]) == 17
        assert link["href"] == f"/r/{link['id']}"  # relative: no Host reaches it
        assert store.redis.hget(store.keys.linkindex, link["id"]) == article
    again = put_links(client, editor, LINKS).json["links"]
    assert [link["id"] for link in again] == [link["id"] for link in body]
    assert client.get(f"/api/v1/articles/{article}/links").json["links"][:2] == body


@pytest.mark.parametrize("items,field", [
    ([{"title": "x", "url": "javascript:alert(1)"}], "url"),
    ([{"title": "x", "url": "ftp://example.com/a"}], "url"),
    ([{"title": "x", "url": "//evil.com/a"}], "url"),
    ([{"title": "x", "url": "https://example.com:99999/a"}], "url"),
    ([{"title": "x", "url": "https://example.com:0/a"}], "url"),
    ([{"title": "x", "url": "http://[::1/a"}], "url"),
    ([{"title": "", "url": "https://example.com/a"}], "title"),
    ([{"title": "x", "url": "https://example.com/a", "extra": 1}], "extra"),
    ([{"title": f"t{i}", "url": f"https://example.com/{i}"} for i in range(21)], "_schema"),
    ({"title": "x", "url": "https://example.com/a"}, "_schema"),
])
def test_bad_links_are_refused_and_nothing_stored(client, editor, article, store, items, field):
    response = put_links(client, editor, items)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_failed"
    # Keyed by the field, not the list index; the message says which item.
    assert list(response.json["error"]["fields"]) == [field]
    if field != "_schema":
        assert response.json["error"]["fields"][field][0].startswith("Item 1: ")
        assert response.json["error"]["message"] == f"Some fields are invalid: {field}."
    assert store.redis.get(store.keys.article_links(article)) is None
    assert store.redis.hlen(store.keys.linkindex) == 0


def test_links_need_an_editor_and_a_known_article(client, editor, article, reader):
    assert put_links(client, {}, LINKS).status_code == 401
    assert put_links(client, reader, LINKS).status_code == 401
    response = put_links(client, editor, LINKS, article="no-such-article")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "unknown_article"
    assert client.get("/api/v1/articles/no-such-article/links").status_code == 404


def test_twenty_links_are_accepted(client, editor, article):
    items = [{"title": f"t{i}", "url": f"https://example.com/{i}"} for i in range(20)]
    assert len(put_links(client, editor, items).json["links"]) == 20


def test_box_is_filled_with_same_section_articles_ranked_by_approval(client, editor, article):
    put_links(client, editor, LINKS[:1])
    add_article(client, editor, "few-votes", title="One happy reader")
    add_article(client, editor, "many-votes", title="Many mostly happy readers")
    add_article(client, editor, "disliked", title="Mostly disliked")
    add_article(client, editor, "other-section", title="Elsewhere", section="Business")
    vote(client, "few-votes", "yes", 1)
    vote(client, "many-votes", "yes", 12)
    vote(client, "many-votes", "no", 1)
    vote(client, "disliked", "no", 5)
    vote(client, "other-section", "yes", 30)
    box = client.get(f"/api/v1/articles/{article}/links").json["links"]
    assert [link["title"] for link in box] == [
        "Policy Link", "Many mostly happy readers", "One happy reader", "Mostly disliked",
    ]
    assert box[1] == {
        "id": "article:many-votes", "title": "Many mostly happy readers",
        "url": "https://news.example.com/many-votes",
        "href": "https://news.example.com/many-votes", "related": True,
    }


def test_redirect_counts_one_click_in_the_article_slot(client, editor, article, store):
    link = put_links(client, editor, LINKS).json["links"][0]
    response = client.get(f"/r/{link['id']}")
    assert response.status_code == 302
    assert response.headers["Location"] == LINKS[0]["url"]
    assert response.headers["Cache-Control"] == "no-store"
    keys = store.keys
    assert store.redis.hget(keys.article_linkstats(article), f"{link['id']}:clicks") == "1"
    bucket = store.redis.hgetall(keys.hour_bucket(keys.article(article), store.now()))
    assert bucket["click"] == "1" and bucket[f"click:{link['id']}"] == "1"
    day = store.redis.hgetall(keys.day_bucket(keys.article(article), store.now()))
    assert day["click"] == "1"
    events = [fields for _, fields in store.redis.xrange(keys.article_events(article))]
    clicks = [e for e in events if e["type"] == "link.click"]
    assert clicks == [{"type": "link.click", "article": article, "link": link["id"],
                       "hour": store.now().strftime("%Y%m%d%H")}]


@pytest.mark.parametrize("agent", [
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "facebookexternalhit/1.1",
    "Slackbot-LinkExpanding 1.0",
    "Mozilla/5.0 (compatible; bingbot/2.0)",
    "Twitterbot/1.0",
    "curl/8.5.0",
    "",
])
def test_bots_follow_but_are_not_counted(client, editor, article, store, agent):
    link = put_links(client, editor, LINKS).json["links"][0]
    response = client.get(f"/r/{link['id']}", headers={"User-Agent": agent})
    assert response.status_code == 302
    assert response.headers["Location"] == LINKS[0]["url"]
    assert store.redis.hgetall(store.keys.article_linkstats(article)) == {}
    assert client.head(f"/r/{link['id']}").status_code == 302
    assert store.redis.hgetall(store.keys.article_linkstats(article)) == {}


def test_unknown_or_removed_link_is_a_json_404(client, editor, article):
    first, second = put_links(client, editor, LINKS).json["links"]
    put_links(client, editor, LINKS[1:])
    for link_id in ("nope", first["id"]):
        response = client.get(f"/r/{link_id}")
        assert response.status_code == 404
        assert response.json["error"]["code"] == "not_found"
        assert "Location" not in response.headers
    assert client.get(f"/r/{second['id']}").status_code == 302


def crafted_paths(real_id: str) -> list[str]:
    evil = ["//evil.com", "/\\evil.com", "https://evil.com", "http:%2F%2Fevil.com",
            "%2F%2Fevil.com", "%252F%252Fevil.com", "..%2F..%2Fevil.com", "../../evil.com",
            "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "....//....//evil.com", "evil.com",
            "%0d%0aLocation:%20https://evil.com", "%0aSet-Cookie:%20a=b", "%00",
            "%E2%80%AEmoc.live", "%ef%bc%8f%ef%bc%8fevil.com", "\u2215\u2215evil.com",
            "javascript:alert(1)", "data:text/html,x", "x" * 200, "a" * 129, "A" * 5000,
            "@evil.com", "%40evil.com", "x@evil.com", "%09//evil.com", " //evil.com",
            "..", ".", "%2e", "~", "%ff%fe", "\u00e9v\u00eel", "\U0001f600"]
    variants = [f"/r/{e}" for e in evil]
    variants += [f"/r/{quote(e, safe='')}" for e in evil[:10]]
    variants += [
        f"/r/{real_id}?url=https://evil.com", f"/r/{real_id}?next=//evil.com",
        f"/r/{real_id}?redirect=https%3A%2F%2Fevil.com", f"/r/{real_id}/https://evil.com",
        f"/r/{real_id}//evil.com", f"/r/{real_id}%2F..%2F..%2Fevil.com",
        f"/r/{real_id}%0d%0aLocation:https://evil.com", f"/r/{real_id}#//evil.com",
        f"/r//{real_id}", f"/r/{real_id}/", f"/r/{real_id}.", f"/r/{real_id}%00",
        "/r/", "/r", "/r/?url=https://evil.com", "//r/evil.com", "/r/..%2f..%2f",
        f"/r/{real_id.upper()}", f"/r/ {real_id}", f"/r/{real_id}\t",
    ]
    return variants


def test_redirect_never_sends_a_location_outside_the_stored_urls(client, editor, article):
    stored = put_links(client, editor, LINKS).json["links"]
    allowed = {link["url"] for link in LINKS}
    paths = crafted_paths(stored[0]["id"])
    assert len(paths) >= 50
    for path in paths:
        for method in (client.get, client.head):
            response = method(path, headers={"Host": "localhost"})
            location = response.headers.get("Location")
            assert location is None or location in allowed, (path, response.status_code, location)
            assert response.status_code < 500, path
            if location is not None:
                assert response.status_code == 302


def test_impressions_are_counted_for_known_links_only(client, editor, article, store):
    first, second = put_links(client, editor, LINKS).json["links"]
    url = f"/api/v1/articles/{article}/links/impressions"
    response = client.post(url, json={"links": [first["id"], first["id"], "unknown-id"]})
    assert response.status_code == 200, response.json
    assert response.json == {"counted": 1}
    client.post(url, json={"links": [first["id"], second["id"]]})
    client.get(f"/r/{first['id']}")
    stats = {s["id"]: s for s in links.stats(store, article)}
    assert stats[first["id"]] == {
        "id": first["id"], "title": "Policy Link", "url": LINKS[0]["url"],
        "clicks": 1, "impressions": 2, "ctr": 0.5,
    }
    assert stats[second["id"]]["impressions"] == 1 and stats[second["id"]]["clicks"] == 0
    bucket = store.redis.hgetall(store.keys.day_bucket(store.keys.article(article), store.now()))
    assert bucket["imp"] == "3" and bucket[f"imp:{first['id']}"] == "2"
    events = [f["type"] for _, f in store.redis.xrange(store.keys.article_events(article))]
    assert events.count("link.impression") == 3


def test_impressions_validate_their_input(client, editor, article, store):
    url = f"/api/v1/articles/{article}/links/impressions"
    assert client.post(url, json={"links": []}).status_code == 422
    assert client.post(url, json={"links": ["bad id!"]}).status_code == 422
    assert client.post(url, json={"links": [f"l{i}" for i in range(21)]}).status_code == 422
    assert client.post(url, json={"links": ["a"], "more": 1}).status_code == 422
    assert client.post(url, data="x", content_type="text/plain").status_code == 415
    assert client.post(url, json={"links": ["a"]},
                       headers={"X-Engage-Reader": "forged"}).status_code == 401
    response = client.post("/api/v1/articles/nope/links/impressions", json={"links": ["a"]})
    assert response.status_code == 404 and response.json["error"]["code"] == "unknown_article"
    assert links.stats(store, article) == []


def test_impression_reports_are_limited_per_address(client, editor, article, store):
    first = put_links(client, editor, LINKS).json["links"][0]
    url = f"/api/v1/articles/{article}/links/impressions"
    body = {"links": [first["id"]]}
    statuses = [client.post(url, json=body).status_code
                for _ in range(budgets.IMPRESSION_REPORTS + 1)]
    assert statuses == [200] * budgets.IMPRESSION_REPORTS + [429]
    refused = client.post(url, json=body)
    assert refused.json["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= budgets.MINUTE
    # Another address reports on.
    assert client.post(url, json=body, environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code \
        == 200


def test_seeds_load_the_policy_link(app, store):
    summary = seeds.load(store, app.config["SEEDS_DIR"])
    assert summary["links"] >= 1
    box = links.for_articles(store, ["korea-china-reset"])["korea-china-reset"]
    assert box[0]["title"] == "Policy Link"
    assert box[0]["href"] == f"/r/{box[0]['id']}"
    assert seeds.load(store, app.config["SEEDS_DIR"])["links"] == summary["links"]


def test_widget_bundle_and_mine(client, editor, article):
    put_links(client, editor, LINKS)
    add_article(client, editor, "second")
    vote(client, article, "yes", 2)
    url = f"/api/v1/widget?article={article}&article=second&article=missing"
    response = client.get(url)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["choices"] == ["yes", "no"] and body["reason_choice"] == "no"
    assert body["unknown"] == ["missing"]
    assert body["articles"][article]["counts"] == {"yes": 2, "no": 0}
    assert body["articles"][article]["links"][0]["title"] == "Policy Link"
    assert body["articles"][article]["polls"] == []
    assert "public" in response.headers["Cache-Control"]
    again = client.get(url, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304

    mine_url = f"/api/v1/widget/mine?article={article}&article=second"
    assert client.get(mine_url).status_code == 401
    reader = new_reader(client)
    client.put(f"/api/v1/articles/{article}/reactions/mine",
               json={"choice": "no", "reason": "unclear"}, headers=reader)
    mine = client.get(mine_url, headers=reader)
    assert mine.status_code == 200
    assert mine.headers["Cache-Control"] == "private, no-store"
    assert mine.json["articles"][article] == {
        "counts": {"yes": 2, "no": 1}, "total": 3,
        "mine": "no", "reason": "unclear", "polls": [],
    }
    assert mine.json["articles"]["second"]["mine"] is None
    assert client.get("/api/v1/widget").status_code == 422


def test_fill_in_per_article_section_in_one_batch(client, editor, article, store):
    add_article(client, editor, "biz-1", title="Biz one", section="Business")
    add_article(client, editor, "biz-2", title="Biz two", section="Business")
    add_article(client, editor, "dip-2", title="Dip two")
    boxes = links.for_articles(store, [article, "biz-1", "dip-2", "missing"])
    assert [link["id"] for link in boxes[article]] == ["article:dip-2"]
    assert [link["id"] for link in boxes["biz-1"]] == ["article:biz-2"]
    assert [link["id"] for link in boxes["dip-2"]] == [f"article:{article}"]
    assert boxes["missing"] == []


def test_empty_list_clears_the_curated_links(client, editor, article, store):
    first = put_links(client, editor, LINKS).json["links"][0]
    assert put_links(client, editor, []).json == {"links": []}
    assert store.redis.hlen(store.keys.linkindex) == 0
    assert client.get(f"/r/{first['id']}").status_code == 404


def test_redis_outage_is_a_503_on_every_link_path(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    app = make_app(server.url, tmp_path, RETRY_AFTER=7)
    client = app.test_client()
    try:
        with app.app_context():
            editor = {"Authorization": "Bearer " + tokens.create(get_store(), "editor")[0]}
        client.put("/api/v1/articles/korea-china-reset", json=ARTICLE, headers=editor)
        link = put_links(client, editor, LINKS).json["links"][0]
        server.stop()
        calls = [
            lambda: client.get(f"/r/{link['id']}"),
            lambda: client.get("/api/v1/articles/korea-china-reset/links"),
            lambda: put_links(client, editor, LINKS),
            lambda: client.post("/api/v1/articles/korea-china-reset/links/impressions",
                                json={"links": [link["id"]]}),
            lambda: client.get("/api/v1/widget?article=korea-china-reset"),
        ]
        for call in calls:
            response = call()
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.json["error"]["code"] == "storage_unavailable"
            assert response.headers["Retry-After"] == "7"
            assert "Location" not in response.headers
    finally:
        server.stop()
        with app.app_context():
            get_store().close()
