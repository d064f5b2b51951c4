"""The near cache of anonymous reads (store/nearcache.py) against a real Redis.

What must hold: repeats are served without Redis; any change made anywhere (another
process, a direct write, a flush) reaches readers; a frozen or restarted Redis gets
the same answers as without the cache; the cache stays within its bounds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage.identity import get_identity
from engage.store import get_store, tokens
from tests.conftest import ARTICLE, get_store_of, make_app, new_reader
from tests.redis_server import RedisServer

READ = "/api/v1/articles/{}/reactions"


def hgetall_calls(server: RedisServer) -> int:
    client = server.client()
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


def register(app: Flask, *article_ids: str) -> None:
    client = app.test_client()
    with app.app_context():
        editor = {"Authorization": "Bearer " + tokens.create(get_store(), "editor")[0]}
    for article_id in article_ids:
        response = client.put(f"/api/v1/articles/{article_id}", json=ARTICLE, headers=editor)
        assert response.status_code in (200, 201), response.get_json()


def counts(client: FlaskClient, article_id: str = "a") -> dict[str, int]:
    response = client.get(READ.format(article_id))
    assert response.status_code == 200, response.get_json()
    result: dict[str, int] = response.get_json()["counts"]
    return result


def test_repeats_cost_no_redis_command(app: Flask, client: FlaskClient,
                                       redis_server: RedisServer) -> None:
    register(app, "a")
    counts(client)  # fills
    before = hgetall_calls(redis_server)
    for _ in range(20):
        assert counts(client) == {"yes": 0, "no": 0}
    batch = client.get("/api/v1/reactions?article=a&article=unknown")
    assert batch.status_code == 200
    client.get("/api/v1/reactions?article=a&article=unknown")
    # The batch filled "unknown" (one HGETALL); everything else came from memory.
    assert hgetall_calls(redis_server) - before == 1
    assert batch.get_json()["unknown"] == ["unknown"]


def test_changes_from_elsewhere_reach_readers(app: Flask, client: FlaskClient,
                                              redis_server: RedisServer,
                                              tmp_path: Path) -> None:
    """Votes by another app (another worker), a direct write and a flush all show."""
    register(app, "a")
    other = make_app(redis_server.url, tmp_path / "other")
    try:
        voter = other.test_client()
        assert counts(client) == {"yes": 0, "no": 0}
        truth = 0
        previous = 0
        for _ in range(30):
            assert voter.put(READ.format("a") + "/mine", json={"choice": "yes"},
                             headers=new_reader(voter)).status_code == 200
            truth += 1
            # The change notice travels on its own connection: on loopback it is there
            # by the next read; allow a machine under load a moment, never a wrong count.
            deadline = time.monotonic() + 2
            while True:
                seen = counts(client)["yes"]
                assert previous <= seen <= truth, (previous, seen, truth)
                previous = seen
                if seen == truth or time.monotonic() > deadline:
                    break
            assert seen == truth
        direct = redis_server.client()
        direct.hset("engage:a:{a}:counts", "no", 5)
        deadline = time.monotonic() + 2
        while counts(client)["no"] != 5:
            assert time.monotonic() < deadline
        direct.flushall()
        deadline = time.monotonic() + 2
        while client.get(READ.format("a")).status_code != 404:
            assert time.monotonic() < deadline
        direct.close()
    finally:
        get_store_of(other).close()


def test_own_writes_are_read_at_once(app: Flask, client: FlaskClient) -> None:
    """A worker's own vote or new article is never hidden by its cache, even for a
    moment (the Redis notice may lag behind on its own connection)."""
    assert client.get(READ.format("late")).status_code == 404  # cached as unknown
    register(app, "late")
    assert client.get(READ.format("late")).status_code == 200
    for n in range(1, 6):
        assert client.put(READ.format("late") + "/mine", json={"choice": "no"},
                          headers=new_reader(client)).status_code == 200
        assert counts(client, "late") == {"yes": 0, "no": n}


@pytest.mark.parametrize("app_config", [{"NEAR_CACHE_SIZE": 3}])
def test_size_is_bounded(app: Flask, client: FlaskClient) -> None:
    ids = [f"s{i}" for i in range(6)]
    register(app, *ids)
    for article_id in ids:
        assert counts(client, article_id) == {"yes": 0, "no": 0}
    near = get_store_of(app).near
    assert len(near) == 3
    assert near._by_key.keys() == {
        key for article_id in ids[3:]
        for key in (f"engage:a:{{{article_id}}}", f"engage:a:{{{article_id}}}:counts")
    }


@pytest.mark.parametrize("app_config", [{"NEAR_CACHE_TTL": 0.2}])
def test_entries_expire_without_notice(app: Flask, client: FlaskClient,
                                       redis_server: RedisServer) -> None:
    register(app, "a")
    counts(client)
    before = hgetall_calls(redis_server)
    counts(client)
    assert hgetall_calls(redis_server) == before
    time.sleep(0.3)
    counts(client)
    assert hgetall_calls(redis_server) == before + 1


@pytest.mark.parametrize("app_config", [{"NEAR_CACHE_SIZE": 0}])
def test_can_be_turned_off(app: Flask, client: FlaskClient,
                           redis_server: RedisServer) -> None:
    register(app, "a")
    assert get_store_of(app).near is None
    counts(client)
    before = hgetall_calls(redis_server)
    counts(client)
    assert hgetall_calls(redis_server) == before + 1


def test_frozen_redis_gets_503_not_old_counts(own_redis: RedisServer, tmp_path: Path) -> None:
    """With no other request failing to tell it, the heartbeat takes the cache out of
    the way of a frozen Redis within about one heartbeat and one socket timeout."""
    app = make_app(own_redis.url, tmp_path, NEAR_CACHE_HEARTBEAT=0.2,
                   REDIS_SOCKET_TIMEOUT=0.5, RETRY_AFTER=3)
    try:
        register(app, "a")
        client = app.test_client()
        assert counts(client) == {"yes": 0, "no": 0}
        own_redis.pause()
        try:
            started = time.monotonic()
            while True:
                began = time.monotonic()
                response = client.get(READ.format("a"))
                assert time.monotonic() - began < 2.0
                if response.status_code == 503:
                    break
                assert response.status_code == 200
                assert time.monotonic() - started < 2.0
                time.sleep(0.02)
            assert response.headers["Retry-After"] == "3"
        finally:
            own_redis.resume()
        deadline = time.monotonic() + 5
        while client.get(READ.format("a")).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        get_store_of(app).close()


def test_restarted_redis_is_read_afresh(own_redis: RedisServer, tmp_path: Path) -> None:
    app = make_app(own_redis.url, tmp_path, NEAR_CACHE_HEARTBEAT=3600)
    try:
        register(app, "a")
        client = app.test_client()
        assert counts(client) == {"yes": 0, "no": 0}
        own_redis.stop()
        own_redis.start()  # no persistence: the article is gone
        deadline = time.monotonic() + 5
        while True:
            status = client.get(READ.format("a")).status_code
            assert status in (404, 503, 200)
            if status == 404:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        get_store_of(app).close()


@pytest.mark.parametrize("app_config", [{"THROTTLE_VOTES": 10**9}])
def test_threads_reading_while_others_vote_end_exact(app: Flask,
                                                     redis_server: RedisServer) -> None:
    """gthread workers: many threads share one cache; reads never pass the truth, and
    once the votes stop every read is exact."""
    register(app, "a")
    votes_each, voters = 40, 4
    errors: list[Any] = []

    with app.app_context():
        tokens_of = [[get_identity().mint_reader() for _ in range(votes_each)]
                     for _ in range(voters)]

    def vote(mine: list[str]) -> None:
        client = app.test_client()
        for token in mine:
            response = client.put(READ.format("a") + "/mine", json={"choice": "yes"},
                                  headers={"X-Engage-Reader": token})
            if response.status_code != 200:
                errors.append(response.get_json())

    def read(stop: threading.Event) -> None:
        client = app.test_client()
        while not stop.is_set():
            seen = counts(client)["yes"]
            if seen > votes_each * voters:
                errors.append(seen)

    stop = threading.Event()
    readers = [threading.Thread(target=read, args=(stop,)) for _ in range(3)]
    writers = [threading.Thread(target=vote, args=(mine,)) for mine in tokens_of]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    client = app.test_client()
    deadline = time.monotonic() + 2
    while counts(client)["yes"] != votes_each * voters:
        assert time.monotonic() < deadline
    assert redis_server.client().hget("engage:a:{a}:counts", "yes") == str(votes_each * voters)


def test_a_redis_that_refuses_tracking_runs_without_the_cache(
    own_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ACL user without the CLIENT command (or a server without tracking): reads
    work, the cache turns itself off once and is not tried again."""
    admin = own_redis.client()
    admin.execute_command("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*",
                          "+@all", "-client")
    admin.close()
    url = f"redis://app:app-password@127.0.0.1:{own_redis.port}/0"
    app = make_app(url, tmp_path)
    try:
        register(app, "a")
        client = app.test_client()
        assert counts(client) == {"yes": 0, "no": 0}
        near = get_store_of(app).near
        assert near is not None and near.size == 0 and len(near) == 0
        attempts: list[int] = []
        monkeypatch.setattr(near, "_connect", lambda: attempts.append(1))
        near._broken_at = 0.0  # as if the rebuild pause were long over
        before = hgetall_calls(own_redis)
        for _ in range(3):
            assert counts(client) == {"yes": 0, "no": 0}
        assert hgetall_calls(own_redis) == before + 3  # every read went to Redis
        assert attempts == []  # and the cache did not try to connect again
    finally:
        get_store_of(app).close()
