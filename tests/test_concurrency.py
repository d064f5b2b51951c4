"""Concurrent votes through a real threaded HTTP server: counts stay exact."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer

from engage.store import get_store, tokens
from tests.conftest import ARTICLE, make_app
from tests.live_server import KeepAliveClient, mint_readers, serving
from tests.redis_server import RedisServer
from tests.test_privacy import address_forms, everything_in

THREADS = 50
ARTICLE_ID = "korea-china-reset"
MINE = f"/api/v1/articles/{ARTICLE_ID}/reactions/mine"


class Live(KeepAliveClient):
    """The app behind werkzeug's threaded server, plus helpers to call it."""

    def __init__(self, app: Flask, server: BaseWSGIServer) -> None:
        super().__init__(server.server_port)
        self.app = app
        self.server = server

    def readers(self, n: int) -> list[dict[str, str]]:
        return mint_readers(self.app, n)

    def counts(self) -> dict[str, int]:
        status, body = self.request("GET", f"/api/v1/articles/{ARTICLE_ID}/reactions")
        assert status == 200
        counts: dict[str, int] = body["counts"]
        return counts


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    app = make_app(redis.url, Path(tmp_path_factory.mktemp("data")),
                   THROTTLE_VOTES=1_000_000, REDIS_MAX_CONNECTIONS=THREADS + 10)
    try:
        with serving(app, keep_alive=True) as server:
            yield Live(app, server)
    finally:
        with app.app_context():
            get_store().close()
        redis.stop()


@pytest.fixture
def fresh(live: Live) -> Iterator[Live]:
    with live.app.app_context():
        store = get_store()
        store.redis.flushall()
        token = tokens.create(store, "editor")[0]
    status, _ = live.request("PUT", f"/api/v1/articles/{ARTICLE_ID}", ARTICLE,
                             {"Authorization": f"Bearer {token}"})
    assert status == 201
    yield live
    # Whatever the flow, the client address (127.0.0.1 here) never reaches Redis.
    with live.app.app_context():
        pool = get_store().redis.connection_pool.connection_kwargs
    import redis

    raw = redis.Redis(host=pool["host"], port=pool["port"])
    blobs = everything_in(raw)
    raw.close()
    assert any(b":thr:" in b for b in blobs)
    for form in address_forms("127.0.0.1"):
        assert not [b for b in blobs if form in b], form


def run_all(jobs: list[Callable[[], tuple[int, Any]]]) -> list[tuple[int, Any]]:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda job: job(), jobs))


def test_distinct_readers_count_exactly(fresh: Live) -> None:
    readers = fresh.readers(2000)
    choices = ["yes" if i % 3 else "no" for i in range(2000)]
    results = run_all([
        (lambda r=r, c=c: fresh.request("PUT", MINE, {"choice": c}, r))
        for r, c in zip(readers, choices, strict=True)
    ])
    accepted = [c for (status, _), c in zip(results, choices, strict=True) if status == 200]
    assert len(accepted) == 2000, {status for status, _ in results}
    assert fresh.counts() == {"yes": accepted.count("yes"), "no": accepted.count("no")}
    with fresh.app.app_context():
        store = get_store()
        assert store.redis.hlen(store.keys.article_voters(ARTICLE_ID)) == 2000
        # One event per accepted vote (plus the article's creation).
        assert store.redis.xlen(store.keys.article_events(ARTICLE_ID)) == 2001


def test_repeats_of_one_vote_count_once(fresh: Live) -> None:
    others = fresh.readers(3)
    for other in others:
        assert fresh.request("PUT", MINE, {"choice": "no"}, other)[0] == 200
    before = fresh.counts()
    reader = fresh.readers(1)[0]
    results = run_all([
        (lambda: fresh.request("PUT", MINE, {"choice": "yes"}, reader)) for _ in range(1000)
    ])
    assert {status for status, _ in results} == {200}
    assert {body["mine"] for _, body in results} == {"yes"}
    after = fresh.counts()
    assert after == {"yes": before["yes"] + 1, "no": before["no"]}
    with fresh.app.app_context():
        store = get_store()
        events = store.redis.xrange(store.keys.article_events(ARTICLE_ID))
        assert [f["type"] for _, f in events].count("reaction.vote") == 4


def test_switching_readers_keep_one_vote_each(fresh: Live) -> None:
    readers = fresh.readers(10)
    jobs = []
    for i in range(500):
        reader = readers[i % len(readers)]
        choice = "yes" if (i // len(readers)) % 2 else "no"
        body: dict[str, str] = {"choice": choice}
        if choice == "no" and i % 4 == 0:
            body["reason"] = "biased"
        jobs.append(lambda r=reader, b=body: fresh.request("PUT", MINE, b, r))
    results = run_all(jobs)
    assert {status for status, _ in results} == {200}
    counts = fresh.counts()
    assert counts["yes"] + counts["no"] == len(readers)
    with fresh.app.app_context():
        store = get_store()
        held = store.redis.hvals(store.keys.article_voters(ARTICLE_ID))
        assert len(held) == len(readers)
        assert counts["yes"] == sum(1 for v in held if v == "yes")
        assert counts["no"] == sum(1 for v in held if v.startswith("no"))
        reasons = store.redis.hgetall(store.keys.article_reasons(ARTICLE_ID))
        assert int(reasons.get("biased", 0)) == sum(1 for v in held if v == "no|biased")
