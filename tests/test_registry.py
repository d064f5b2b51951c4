"""store/registry.py: the bounded pending queue, what a page or feed registers, who
owns an article, and the failures list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage.store import articles, registry
from tests.conftest import ARTICLE, Clock

PUBLISHED = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"PENDING_PER_SITE": 50, "UNVERIFIED_KEPT": 5}


def found(article_id: str = "p-1", title: str = "From the page", **changes: Any) -> registry.Found:
    values: dict[str, Any] = {
        "article_id": article_id, "url": f"https://paper.example/{article_id}",
        "title": title, "section": "World", "published": PUBLISHED, "tags": ("a", "b"),
    }
    return registry.Found(**(values | changes))


def test_a_page_registers_a_new_article_with_its_source_and_verification(
        store: Any, clock: Clock) -> None:
    assert registry.register(store, "default", found(), "page", clock()) == "created"
    article = articles.get(store, "p-1")
    assert article is not None
    assert (article["title"], article["section"], article["published_at"], article["tags"],
            article["source"], article["site"]) == (
        "From the page", "World", PUBLISHED.isoformat(), ["a", "b"], "page", "default")
    assert article["verified_at"] == clock().isoformat()
    clock.advance(60)
    assert registry.register(store, "default", found(), "page", clock()) == "unchanged"
    assert articles.get(store, "p-1")["verified_at"] == clock().isoformat()  # type: ignore[index]
    assert registry.register(store, "default", found(title="Renamed"), "feed",
                             clock()) == "updated"
    article = articles.get(store, "p-1")
    assert article is not None and (article["title"], article["source"]) == ("Renamed", "feed")


def test_page_text_is_made_one_line_within_the_schema_limits(store: Any, clock: Clock) -> None:
    long = found(title="A\ttitle\n" + "x" * 400, section="S\x00ection" + "y" * 100,
                 tags=tuple(f"t{n}" for n in range(30)) + ("", "t1"), published=None)
    registry.register(store, "default", long, "page", clock())
    article = articles.get(store, "p-1")
    assert article is not None
    assert article["title"].startswith("A title xxx") and len(article["title"]) == 300
    assert len(article["section"]) == 64 and "\x00" not in article["section"]
    assert article["tags"] == [f"t{n}" for n in range(20)]
    assert article["published_at"] == clock().isoformat()  # no date on the page: first seen


def test_an_editors_article_is_kept_unless_it_follows_the_page(
        client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock) -> None:
    assert client.put("/api/v1/articles/p-1", json=ARTICLE, headers=editor).status_code == 201
    assert client.get("/api/v1/articles/p-1").json["source"] == "editor"
    assert registry.register(store, "default", found(), "page", clock()) == "kept"
    assert registry.register(store, "default", found(), "feed", clock()) == "kept"
    assert articles.get(store, "p-1")["title"] == ARTICLE["title"]  # type: ignore[index]
    answer = client.put("/api/v1/articles/p-1", json={**ARTICLE, "follow_page": True},
                        headers=editor)
    assert answer.status_code == 200 and answer.json["follow_page"] is True
    assert registry.register(store, "default", found(), "page", clock()) == "updated"
    article = client.get("/api/v1/articles/p-1").json
    assert (article["title"], article["source"], article["follow_page"]) == (
        "From the page", "page", True)
    # An editor's later edit takes it back, the choice to follow kept.
    client.put("/api/v1/articles/p-1", json=ARTICLE, headers=editor)
    article = client.get("/api/v1/articles/p-1").json
    assert (article["source"], article["follow_page"]) == ("editor", True)


def test_an_article_stored_before_sources_is_the_editors(store: Any, clock: Clock) -> None:
    key = store.keys.article("old-1")
    store.redis.hset(key, mapping={"title": "Old", "url": "https://paper.example/old",
                                   "section": "S", "published_at": PUBLISHED.isoformat(),
                                   "tags": "[]"})
    assert articles.get(store, "old-1")["source"] == "editor"  # type: ignore[index]
    assert registry.register(store, "default", found("old-1"), "page", clock()) == "kept"
    assert store.redis.hget(key, "title") == "Old"


def test_another_sites_article_is_kept(client: FlaskClient, admin: dict[str, str],
                                       store: Any, clock: Clock) -> None:
    assert client.post("/api/v1/sites", json={"name": "other", "origins": ["https://o.example"]},
                       headers=admin).status_code == 201
    registry.register(store, "other", found(), "page", clock())
    assert registry.register(store, "default", found(title="Hijack"), "page",
                             clock()) == "kept"
    assert articles.get(store, "p-1")["title"] == "From the page"  # type: ignore[index]


def test_the_pending_queue_dedupes_and_holds_its_bound(store: Any, clock: Clock) -> None:
    assert registry.enqueue(store, "default", "real", "https://paper.example/real", clock())
    assert not registry.enqueue(store, "default", "real", "https://paper.example/x", clock())
    for n in range(500):
        clock.advance(0.001)
        registry.enqueue(store, "default", f"fake-{n}", f"https://paper.example/{n}", clock())
    assert registry.pending_count(store, "default") == 50
    assert store.redis.hlen(store.keys.registry("default", "urls")) == 50
    # The newest are kept, and taken newest first.
    taken = registry.claim(store, "default", clock(), limit=3)
    assert taken == [(f"fake-{n}", f"https://paper.example/{n}") for n in (499, 498, 497)]
    # Leased: not taken again until the lease ends.
    assert registry.claim(store, "default", clock(), limit=3)[0][0] == "fake-496"
    later = clock() + timedelta(seconds=registry.LEASE + 1)
    assert ("fake-499", "https://paper.example/499") in registry.claim(store, "default", later,
                                                                      limit=100)


def test_a_failure_is_listed_and_not_queued_again_for_a_while(store: Any, clock: Clock) -> None:
    registry.enqueue(store, "default", "bad", "https://paper.example/bad", clock())
    registry.note_failure(store, "default", "bad", "size", "The page is larger.", clock(),
                          url="https://paper.example/bad")
    assert registry.pending_count(store, "default") == 0
    listed = registry.failures(store, "default")
    assert [(f["key"], f["url"], f["reason"]) for f in listed] == [
        ("bad", "https://paper.example/bad", "size")]
    assert not registry.enqueue(store, "default", "bad", "https://paper.example/bad", clock())
    clock.advance(registry.FAILED_RETRY + 1)
    assert registry.enqueue(store, "default", "bad", "https://paper.example/bad", clock())
    # Verified at last: off the failures list.
    registry.register(store, "default", found("bad"), "page", clock())
    assert registry.failures(store, "default") == []
    assert registry.pending_count(store, "default") == 0


def test_the_failures_list_keeps_the_newest(store: Any, clock: Clock) -> None:
    for n in range(12):
        clock.advance(1)
        registry.note_failure(store, "default", f"id-{n}", "origin", "Off the origins.", clock())
    assert [f["key"] for f in registry.failures(store, "default")] == [
        f"id-{n}" for n in range(11, 6, -1)]
    assert store.redis.hlen(store.keys.registry("default", "failures")) == 5
