"""Contract tests for reactions: read, vote, change, withdraw, reasons, batch, caching."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.store import reactions
from tests.conftest import ARTICLE, new_reader
from tests.test_articles import assert_error, redis_snapshot

READ = "/api/v1/articles/korea-china-reset/reactions"
MINE = READ + "/mine"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"THROTTLE_VOTES": 5, "THROTTLE_WINDOW": 120}


def test_anonymous_read(client: FlaskClient, article: str) -> None:
    response = client.get(READ)
    assert response.status_code == 200
    assert response.get_json() == {
        "article": "korea-china-reset", "counts": {"yes": 0, "no": 0}, "total": 0, "mine": None,
    }


def test_vote_is_idempotent(client: FlaskClient, article: str, reader: dict[str, str],
                            store: Any) -> None:
    first = client.put(MINE, json={"choice": "yes"}, headers=reader)
    assert first.status_code == 200
    body = first.get_json()
    assert body == {"article": "korea-china-reset", "counts": {"yes": 1, "no": 0}, "total": 1,
                    "mine": "yes"}
    events = store.redis.xlen(store.keys.article_events(article))
    for _ in range(3):
        again = client.put(MINE, json={"choice": "yes"}, headers=reader)
        assert again.status_code == 200
        assert again.get_json() == body
    # A repeat logs nothing and uses no throttle budget.
    assert store.redis.xlen(store.keys.article_events(article)) == events
    assert client.get(READ, headers=reader).get_json()["mine"] == "yes"


def test_change_moves_the_vote(client: FlaskClient, article: str, reader: dict[str, str],
                               store: Any) -> None:
    client.put(MINE, json={"choice": "yes"}, headers=reader)
    other = new_reader(client)
    client.put(MINE, json={"choice": "yes"}, headers=other)
    moved = client.put(MINE, json={"choice": "no"}, headers=reader).get_json()
    assert moved["counts"] == {"yes": 1, "no": 1}
    assert moved["total"] == 2
    assert moved["mine"] == "no"
    events = store.redis.xrange(store.keys.article_events(article))
    last = events[-1][1]
    assert last["type"] == "reaction.change"
    assert last["choice"] == "no" and last["previous"] == "yes"
    assert last["article"] == article
    assert last["reader"] and last["reader"] not in reader["X-Engage-Reader"]


def test_withdraw(client: FlaskClient, article: str, reader: dict[str, str], store: Any) -> None:
    client.put(MINE, json={"choice": "no", "reason": "outdated"}, headers=reader)
    response = client.delete(MINE, headers=reader)
    assert response.status_code == 200
    assert response.get_json() == {"article": "korea-china-reset",
                                   "counts": {"yes": 0, "no": 0}, "total": 0, "mine": None}
    assert reactions.reasons(store, article) == {}
    # Withdrawing again is a no-op, still 200.
    assert client.delete(MINE, headers=reader).get_json()["mine"] is None
    types = [f["type"] for _, f in store.redis.xrange(store.keys.article_events(article))]
    assert types[-2:] == ["reaction.vote", "reaction.withdraw"]


def test_reason_counts(client: FlaskClient, article: str, store: Any) -> None:
    readers = [new_reader(client) for _ in range(4)]

    def vote(index: int, body: dict[str, str]) -> dict[str, Any]:
        # One address per reader keeps this test clear of the per-address throttle.
        response = client.put(MINE, json=body, headers=readers[index],
                              environ_base={"REMOTE_ADDR": f"192.0.2.{index + 1}"})
        assert response.status_code == 200, response.get_json()
        result: dict[str, Any] = response.get_json()
        return result

    vote(0, {"choice": "no", "reason": "outdated"})
    vote(1, {"choice": "no", "reason": "outdated"})
    assert vote(2, {"choice": "no", "reason": "biased"})["reason"] == "biased"
    assert "reason" not in vote(3, {"choice": "no"})
    assert reactions.reasons(store, article) == {"outdated": 2, "biased": 1}
    # Changing the reason moves it; moving to yes drops it.
    vote(0, {"choice": "no", "reason": "unclear"})
    vote(1, {"choice": "yes"})
    assert reactions.reasons(store, article) == {"biased": 1, "unclear": 1}
    counts = client.get(READ).get_json()["counts"]
    assert counts == {"yes": 1, "no": 3}
    # Editors see the reasons in the stats buckets too.
    day = store.redis.hgetall(store.keys.day_bucket(store.keys.article(article), store.now()))
    assert day["reason:outdated"] == "2" and day["reason:unclear"] == "1"
    assert day["+no"] == "5" and day["-no"] == "2" and day["+yes"] == "1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"choice": "maybe"}, "choice"),
        ({"choice": "yes", "reason": "outdated"}, "reason"),
        ({"choice": "no", "reason": "boring"}, "reason"),
        ({"choice": "yes", "extra": 1}, "extra"),
        ({}, "choice"),
        ({"choice": 1}, "choice"),
        ({"choice": ""}, "choice"),
    ],
)
def test_bad_votes_are_422(client: FlaskClient, article: str, reader: dict[str, str],
                           store: Any, body: dict[str, Any], field: str) -> None:
    before = redis_snapshot(store)
    error = assert_error(client.put(MINE, json=body, headers=reader), 422, "validation_failed")
    assert field in error["fields"], error
    assert redis_snapshot(store) == before


def test_malformed_and_non_json_votes(client: FlaskClient, article: str,
                                      reader: dict[str, str], store: Any) -> None:
    before = redis_snapshot(store)
    assert_error(client.put(MINE, data="{choice", headers=reader,
                            content_type="application/json"), 400, "malformed_json")
    assert_error(client.put(MINE, data="choice=yes", headers=reader,
                            content_type="text/plain"), 415, "unsupported_media_type")
    assert_error(client.put(MINE, data="x" * 70_000, headers=reader,
                            content_type="application/json"), 413, "payload_too_large")
    assert_error(client.post(MINE, json={"choice": "yes"}, headers=reader), 405)
    assert redis_snapshot(store) == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_unknown_article_stores_nothing(client: FlaskClient, reader: dict[str, str],
                                        store: Any, method: str) -> None:
    before = redis_snapshot(store)
    kwargs: dict[str, Any] = {"headers": reader}
    if method == "put":
        kwargs["json"] = {"choice": "yes"}
    url = "/api/v1/articles/never-registered/reactions"
    response = getattr(client, method)(url if method == "get" else url + "/mine", **kwargs)
    assert_error(response, 404, "unknown_article")
    assert redis_snapshot(store) == before


@pytest.mark.parametrize("article_id", ["-x", "a" * 129, "a%20b", "%00"])
def test_odd_ids_on_votes_are_404(client: FlaskClient, reader: dict[str, str], store: Any,
                                  article_id: str) -> None:
    before = redis_snapshot(store)
    url = f"/api/v1/articles/{article_id}/reactions/mine"
    assert_error(client.put(url, json={"choice": "yes"}, headers=reader), 404)
    assert_error(client.delete(url, headers=reader), 404)
    assert redis_snapshot(store) == before


def test_throttle_per_address(client: FlaskClient, article: str, store: Any) -> None:
    readers = [new_reader(client) for _ in range(7)]
    for r in readers[:5]:
        assert client.put(MINE, json={"choice": "yes"}, headers=r).status_code == 200
    hour = store.keys.hour_bucket(store.keys.article(article), store.now())
    day = store.keys.day_bucket(store.keys.article(article), store.now())
    before = redis_snapshot(store)
    response = client.put(MINE, json={"choice": "yes"}, headers=readers[5])
    error = assert_error(response, 429, "throttled")
    assert error["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 120
    # Nothing moves but the refusal, tallied for editors in the article's buckets.
    after = redis_snapshot(store)
    assert {k: v for k, v in after.items() if k not in (hour, day)} == {
        k: v for k, v in before.items() if k not in (hour, day)}
    for bucket in (hour, day):
        assert store.redis.hget(bucket, "refused:votes_throttled") == "1"
    # Repeats are no-ops, not throttled; another address still votes.
    assert client.put(MINE, json={"choice": "yes"}, headers=readers[0]).status_code == 200
    other = client.put(MINE, json={"choice": "no"}, headers=readers[6],
                       environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code == 200
    assert other.get_json()["counts"] == {"yes": 5, "no": 1}


def test_etag_and_304_for_anonymous_reads(client: FlaskClient, article: str,
                                          reader: dict[str, str]) -> None:
    first = client.get(READ)
    etag = first.headers["ETag"]
    cache = first.headers["Cache-Control"]
    assert "public" in cache and "max-age=5" in cache
    assert "X-Engage-Reader" in first.headers["Vary"]
    again = client.get(READ, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    client.put(MINE, json={"choice": "yes"}, headers=reader)
    changed = client.get(READ, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_reader_reads_are_private(client: FlaskClient, article: str,
                                  reader: dict[str, str]) -> None:
    client.put(MINE, json={"choice": "yes"}, headers=reader)
    response = client.get(READ, headers=reader)
    assert response.get_json()["mine"] == "yes"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in response.headers
    vote = client.put(MINE, json={"choice": "yes"}, headers=reader)
    assert vote.headers["Cache-Control"] == "private, no-store"


def test_batch_read(client: FlaskClient, article: str, editor: dict[str, str],
                    reader: dict[str, str]) -> None:
    client.put("/api/v1/articles/second", json=ARTICLE, headers=editor)
    client.put(MINE, json={"choice": "no"}, headers=reader)
    response = client.get("/api/v1/reactions?article=korea-china-reset&article=second"
                          "&article=ghost&article=korea-china-reset")
    assert response.status_code == 200
    assert response.get_json() == {
        "articles": {
            "korea-china-reset": {"counts": {"yes": 0, "no": 1}, "total": 1},
            "second": {"counts": {"yes": 0, "no": 0}, "total": 0},
        },
        "unknown": ["ghost"],
    }
    etag = response.headers["ETag"]
    assert client.get(
        "/api/v1/reactions?article=korea-china-reset&article=second&article=ghost"
        "&article=korea-china-reset", headers={"If-None-Match": etag},
    ).status_code == 304


def test_batch_limits(client: FlaskClient, store: Any) -> None:
    ok = "&".join(f"article=a{i}" for i in range(100))
    response = client.get(f"/api/v1/reactions?{ok}")
    assert response.status_code == 200
    assert len(response.get_json()["unknown"]) == 100
    too_many = "&".join(f"article=a{i}" for i in range(101))
    error = assert_error(client.get(f"/api/v1/reactions?{too_many}"), 422, "validation_failed")
    assert "article" in error["fields"]
    assert_error(client.get("/api/v1/reactions"), 422)
    error = assert_error(client.get("/api/v1/reactions?article=-bad"), 422)
    assert "article" in error["fields"]
    # Each id is checked, a trailing newline too; the answer names the bad ones.
    error = assert_error(client.get("/api/v1/reactions?article=a1&article=a2%0A"), 422)
    assert [message[:3] for message in error["fields"]["article"]] == ["1: "]
    assert redis_snapshot(store) == {}


def test_custom_choices(redis_server: Any, tmp_path: Any) -> None:
    from tests.conftest import make_app

    redis_server.client().flushall()
    app: Flask = make_app(redis_server.url, tmp_path, CHOICES=["up", "meh", "down"],
                          REASON_CHOICE="down", REASONS=["dull"])
    client = app.test_client()
    from engage.store import get_store, tokens

    with app.app_context():
        token = tokens.create(get_store(), "editor")[0]
    client.put("/api/v1/articles/x1", json=ARTICLE, headers={"Authorization": f"Bearer {token}"})
    r = new_reader(client)
    url = "/api/v1/articles/x1/reactions/mine"
    assert_error(client.put(url, json={"choice": "yes"}, headers=r), 422)
    body = client.put(url, json={"choice": "down", "reason": "dull"}, headers=r).get_json()
    assert body["counts"] == {"up": 0, "meh": 0, "down": 1}
    assert list(body["counts"]) == ["up", "meh", "down"]


VOTE_OPS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=4),
        st.sampled_from([("yes", None), ("no", None), ("no", "outdated"), ("no", "biased"),
                         (None, None)]),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=VOTE_OPS)
def test_votes_match_a_model(app: Flask, store: Any, ops: list[Any]) -> None:
    """Any sequence of votes, changes and withdrawals leaves exactly the model's counts."""
    store.redis.flushall()
    with app.app_context():
        from engage.schemas import ArticleInSchema
        from engage.store import articles

        articles.upsert(store, "m1", ArticleInSchema().load(ARTICLE))
        model: dict[str, tuple[str, str | None]] = {}
        changes = 0
        for step, (reader_index, (choice, reason)) in enumerate(ops):
            reader = f"reader-{reader_index}"
            before = model.get(reader)
            if choice is None:
                model.pop(reader, None)
            else:
                model[reader] = (choice, reason)
            result, changed = reactions.vote(store, "m1", reader, f"addr{step}", choice, reason)
            assert changed == (before != model.get(reader))
            changes += int(changed)
            assert result.mine == choice
            assert result.counts == {
                c: sum(1 for held, _ in model.values() if held == c) for c in ("yes", "no")
            }
        expected_reasons: dict[str, int] = {}
        for _, reason in model.values():
            if reason:
                expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
        assert reactions.reasons(store, "m1") == expected_reasons
        assert store.redis.hlen(store.keys.article_voters("m1")) == len(model)
        # One event per change, plus the article's creation.
        assert store.redis.xlen(store.keys.article_events("m1")) == changes + 1
        # The stats buckets net out to the counts.
        owner = store.keys.article("m1")
        net = {"yes": 0, "no": 0}
        for key in store.redis.scan_iter(match=owner.replace("{", "\\{").replace("}", "\\}")
                                         + ":d:*"):
            for field, value in store.redis.hgetall(key).items():
                if field[1:] in net:
                    net[field[1:]] += int(value) if field[0] == "+" else -int(value)
        assert net == reactions.read(store, "m1").counts  # type: ignore[union-attr]
