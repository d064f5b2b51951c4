"""Reads a CDN or reverse proxy can cache: public + max-age + stale-while-revalidate,
an ETag answered with 304, and Vary naming only the headers that change the answer."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import new_reader

REACTIONS = "/api/v1/articles/korea-china-reset/reactions"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"CACHE_MAX_AGE": 7, "CACHE_STALE": 45}


def vary(response: Any) -> set[str]:
    return {v.strip().lower() for line in response.headers.getlist("Vary")
            for v in line.split(",") if v.strip()}


def directives(response: Any) -> set[str]:
    return {d.strip() for d in response.headers.get("Cache-Control", "").split(",")}


def assert_public(response: Any) -> None:
    assert response.status_code in (200, 304)
    assert {"public", "max-age=7", "stale-while-revalidate=45"} <= directives(response)
    assert response.headers.get("ETag")


def assert_private(response: Any) -> None:
    assert {"private", "no-store"} <= directives(response)
    assert "public" not in directives(response)


def test_anonymous_count_read_is_cacheable_and_revalidates(client: FlaskClient,
                                                           article: str) -> None:
    first = client.get(REACTIONS)
    assert_public(first)
    # The same URL answers differently with a reader token, so caches must key on it.
    assert "x-engage-reader" in vary(first)
    assert not vary(first) & {"cookie", "authorization", "user-agent", "accept-language"}
    tag = first.headers["ETag"]
    again = client.get(REACTIONS, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == tag
    assert_public(again)  # a 304 refreshes the cache's copy for another max-age


def test_a_vote_changes_the_etag(client: FlaskClient, article: str,
                                 reader: dict[str, str]) -> None:
    tag = client.get(REACTIONS).headers["ETag"]
    client.put(f"{REACTIONS}/mine", json={"choice": "yes"}, headers=reader)
    fresh = client.get(REACTIONS, headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.json["counts"]["yes"] == 1
    assert fresh.headers["ETag"] != tag


def test_reader_reads_and_writes_are_private(client: FlaskClient, article: str,
                                             reader: dict[str, str]) -> None:
    mine = client.get(REACTIONS, headers=reader)
    assert mine.status_code == 200
    assert_private(mine)
    assert "x-engage-reader" in vary(mine)
    wrote = client.put(f"{REACTIONS}/mine", json={"choice": "no"}, headers=reader)
    assert_private(wrote)
    gone = client.delete(f"{REACTIONS}/mine", headers=reader)
    assert_private(gone)


def test_batch_and_widget_reads_do_not_vary_on_the_reader(client: FlaskClient,
                                                          article: str) -> None:
    for url in ("/api/v1/reactions?article=korea-china-reset&article=nope",
                "/api/v1/widget?article=korea-china-reset"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_public(response)
        # They never look at a reader token: varying on it would only split the cache.
        assert "x-engage-reader" not in vary(response), url
        assert client.get(url, headers={"If-None-Match": response.headers["ETag"]}
                          ).status_code == 304


def test_the_widget_takes_the_readers_own_vote_separately(client: FlaskClient,
                                                          article: str) -> None:
    reader = new_reader(client)
    client.put(f"{REACTIONS}/mine", json={"choice": "yes"}, headers=reader)
    counts = client.get("/api/v1/widget?article=korea-china-reset", headers=reader)
    assert_public(counts)  # the same cached bundle for everyone
    assert counts.json["articles"]["korea-china-reset"]["counts"]["yes"] == 1
    mine = client.get("/api/v1/widget/mine?article=korea-china-reset", headers=reader)
    assert mine.status_code == 200
    assert_private(mine)


def test_anonymous_poll_reads_vary_on_both_tokens(client: FlaskClient, article: str,
                                                  editor: dict[str, str]) -> None:
    created = client.post("/api/v1/polls", headers=editor, json={
        "question": "Will the talks last?", "options": ["Yes", "No"],
        "article": article, "results": "after_vote"})
    assert created.status_code == 201, created.json
    for url in (f"/api/v1/polls/{created.json['id']}", f"/api/v1/articles/{article}/polls"):
        anonymous = client.get(url)
        assert_public(anonymous)
        # Staff (Authorization) and readers see results an anonymous caller may not.
        assert {"x-engage-reader", "authorization"} <= vary(anonymous), url
        assert_private(client.get(url, headers=editor))


def test_misses_and_errors_are_not_cached_publicly(client: FlaskClient) -> None:
    missing = client.get("/api/v1/articles/nope/reactions")
    assert missing.status_code == 404
    assert "public" not in directives(missing)

