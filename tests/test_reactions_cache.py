"""The per-process caches of anonymous reads (counts, the widget bundle): at most a
second old, never a reader's answer, bounded; the bundle never past a poll's closes_at,
and a write in this process shows at once.

Another process's vote is played by a second app on the same Redis (its own store and
cache, as another worker has); the first app's cache age goes by a timer the test moves,
and engage's own time by the `clock` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage.store import (
    COUNTS_CACHE_ARTICLES,
    COUNTS_CACHE_SECONDS,
    Store,
    articles,
    get_store,
    make_client,
    reactions,
)
from tests.conftest import ARTICLE, Clock, get_store_of, make_app, new_reader
from tests.redis_server import RedisServer

READ = "/api/v1/articles/korea-china-reset/reactions"
MINE = READ + "/mine"
BUNDLE = "/api/v1/widget?article=korea-china-reset"
PUBLISHED = datetime(2026, 1, 8, 9, tzinfo=UTC)


class Timer:
    """Monotonic seconds that stand still until the test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def timer(store: Store) -> Timer:
    timer = Timer()
    store.timer = timer
    return timer


@pytest.fixture
def other(redis_server: RedisServer, tmp_path: Path) -> Any:
    """Another worker's app on the same Redis."""
    app = make_app(redis_server.url, tmp_path)
    yield app
    get_store_of(app).close()


def vote_elsewhere(other: Flask, choice: str) -> None:
    client = other.test_client()
    response = client.put(MINE, json={"choice": choice}, headers=new_reader(client))
    assert response.status_code == 200, response.json


def total(client: FlaskClient, headers: dict[str, str] | None = None) -> int:
    response = client.get(READ, headers=headers or {})
    assert response.status_code == 200, response.json
    return int(response.get_json()["total"])


def test_an_anonymous_read_is_at_most_a_second_old(client: FlaskClient, article: str,
                                                    timer: Timer, other: Flask) -> None:
    assert COUNTS_CACHE_SECONDS <= 1.0
    assert total(client) == 0
    vote_elsewhere(other, "yes")
    timer.advance(COUNTS_CACHE_SECONDS - 0.01)
    assert total(client) == 0  # from this process's cache
    timer.advance(0.01)
    assert total(client) == 1
    # The batch read shares the entries.
    vote_elsewhere(other, "no")
    batch = client.get("/api/v1/reactions?article=korea-china-reset").get_json()
    assert batch["articles"]["korea-china-reset"]["total"] == 1
    timer.advance(COUNTS_CACHE_SECONDS)
    batch = client.get("/api/v1/reactions?article=korea-china-reset").get_json()
    assert batch["articles"]["korea-china-reset"]["total"] == 2


def test_reader_reads_are_never_cached(client: FlaskClient, article: str, timer: Timer,
                                       other: Flask, store: Store) -> None:
    reader = new_reader(client)
    assert total(client, reader) == 0
    assert len(store.counts_cache.entries) == 0  # a reader's read leaves nothing behind
    assert total(client) == 0  # the anonymous copy, now cached
    vote_elsewhere(other, "yes")
    # Same instant: the reader sees the other process's vote, the anonymous read does not.
    assert total(client, reader) == 1
    assert total(client) == 0
    # The reader's own vote shows in the reader's next read at once, and in this
    # process's anonymous read too.
    assert client.put(MINE, json={"choice": "no"}, headers=reader).status_code == 200
    mine = client.get(READ, headers=reader).get_json()
    assert (mine["mine"], mine["counts"], mine["total"]) == ("no", {"yes": 1, "no": 1}, 2)
    assert total(client) == 2


def test_unknown_articles_are_not_cached(client: FlaskClient, editor: dict[str, str],
                                         timer: Timer) -> None:
    assert client.get(READ).status_code == 404
    assert client.put("/api/v1/articles/korea-china-reset", json=ARTICLE,
                      headers=editor).status_code == 201
    assert total(client) == 0


def test_the_cache_is_bounded(app: Flask, redis_server: RedisServer, tmp_path: Path) -> None:
    assert get_store_of(app).counts_cache.size == COUNTS_CACHE_ARTICLES
    store = Store(make_client(redis_server.url, app.config), app.config,
                  counts_cache_articles=3)
    try:
        with app.app_context():
            for n in range(5):
                articles.upsert(get_store(), f"a{n}", {**ARTICLE, "published_at": PUBLISHED})
        ids = [f"a{n}" for n in range(5)]
        found = reactions.read_many(store, ids)
        assert all(found[aid] is not None for aid in ids)
        assert list(store.counts_cache.entries) == ["a2", "a3", "a4"]  # the oldest go first
        assert reactions.read_many(store, ids) == found
        assert list(store.counts_cache.entries) == ["a4", "a0", "a1"]
    finally:
        store.close()


def part(client: FlaskClient) -> dict[str, Any]:
    response = client.get(BUNDLE)
    assert response.status_code == 200, response.json
    found: dict[str, Any] = response.json["articles"]["korea-china-reset"]
    return found


def test_a_page_view_is_at_most_a_second_old(client: FlaskClient, article: str,
                                             timer: Timer, other: Flask) -> None:
    assert part(client)["total"] == 0
    vote_elsewhere(other, "yes")
    timer.advance(COUNTS_CACHE_SECONDS - 0.01)
    assert part(client)["total"] == 0  # from this process's cache
    timer.advance(0.01)
    assert part(client)["total"] == 1


def test_writes_in_this_process_show_at_once(client: FlaskClient, article: str,
                                             editor: dict[str, str], timer: Timer) -> None:
    assert part(client) == {"counts": {"yes": 0, "no": 0}, "total": 0, "links": [],
                            "polls": []}
    reader = new_reader(client)
    assert client.put(MINE, json={"choice": "no"}, headers=reader).status_code == 200
    assert part(client)["counts"] == {"yes": 0, "no": 1}
    assert client.put("/api/v1/articles/korea-china-reset/links", headers=editor, json=[
        {"title": "Policy Link", "url": "https://example.org/policy"}]).status_code == 200
    assert [link["title"] for link in part(client)["links"]] == ["Policy Link"]
    created = client.post("/api/v1/polls", headers=editor, json={
        "question": "Will the talks last?", "options": ["Yes", "No"],
        "article": "korea-china-reset"})
    assert created.status_code == 201, created.json
    poll = created.json["id"]
    assert [p["id"] for p in part(client)["polls"]] == [poll]
    assert client.put(f"/api/v1/polls/{poll}/votes/mine", json={"options": ["o2"]},
                      headers=reader).status_code == 200
    assert part(client)["polls"][0]["results"]["counts"] == {"o1": 0, "o2": 1}
    assert client.patch(f"/api/v1/polls/{poll}", json={"status": "closed"},
                        headers=editor).status_code == 200
    assert part(client)["polls"][0]["status"] == "closed"
    assert client.put("/api/v1/articles/korea-china-reset", headers=editor,
                      json={**ARTICLE, "section": "Economy"}).status_code == 200
    second = {**ARTICLE, "url": "https://news.example.com/economy/second", "section": "Economy"}
    assert client.put("/api/v1/articles/second", headers=editor, json=second).status_code == 201
    # Another article of the section fills the box within the cache's age.
    timer.advance(COUNTS_CACHE_SECONDS)
    assert [link["id"] for link in part(client)["links"]][1:] == ["article:second"]


def test_a_kept_poll_closes_on_time(client: FlaskClient, article: str,
                                    editor: dict[str, str], timer: Timer,
                                    clock: Clock) -> None:
    closes = clock.time.replace(year=clock.time.year + 1)
    created = client.post("/api/v1/polls", headers=editor, json={
        "question": "Will the talks last?", "options": ["Yes", "No"],
        "article": "korea-china-reset", "closes_at": closes.isoformat(),
        "results": "after_close"})
    assert created.status_code == 201, created.json
    shown = part(client)["polls"][0]
    assert (shown["status"], shown["results"]) == ("open", None)
    clock.set(closes)  # the cache's timer stands still: the part is still kept
    shown = part(client)["polls"][0]
    assert shown["status"] == "closed"
    assert shown["results"]["counts"] == {"o1": 0, "o2": 0}


def test_unknown_articles_and_readers_answers_are_not_kept(
        client: FlaskClient, app: Flask, editor: dict[str, str], timer: Timer,
        store: Store) -> None:
    assert client.get(BUNDLE).json["unknown"] == ["korea-china-reset"]
    assert len(store.widget_cache.entries) == 0
    assert client.put("/api/v1/articles/korea-china-reset", json=ARTICLE,
                      headers=editor).status_code == 201
    assert part(client)["total"] == 0
    store.widget_cache.entries.clear()
    reader = new_reader(client)
    mine = client.get("/api/v1/widget/mine?article=korea-china-reset", headers=reader)
    assert mine.status_code == 200
    assert len(store.widget_cache.entries) == 0


def test_the_widget_cache_is_bounded(store: Store) -> None:
    assert store.widget_cache.size == COUNTS_CACHE_ARTICLES
