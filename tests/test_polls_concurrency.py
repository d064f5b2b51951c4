"""Concurrent poll votes through a real threaded HTTP server: results stay exact."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask

from tests.conftest import get_store_of
from tests.live_server import KeepAliveClient, mint_readers, serving

THREADS = 50
VOTERS = 2000
OPTIONS = ["o1", "o2", "o3", "o4", "o5"]


@pytest.fixture
def app_config() -> dict[str, Any]:
    # Every client shares 127.0.0.1; the address throttle is tested elsewhere.
    return {"THROTTLE_VOTES": 1_000_000, "REDIS_MAX_CONNECTIONS": THREADS + 20}


@pytest.fixture
def server(app: Flask) -> Iterator[KeepAliveClient]:
    with serving(app, keep_alive=True) as live:
        yield KeepAliveClient(live.server_port, timeout=60)


def make_poll(client: KeepAliveClient, editor: dict[str, str], **body: Any) -> str:
    status, created = client.request("POST", "/api/v1/polls", {
        "question": "Which should come first?", "options": ["A", "B", "C", "D", "E"], **body,
    }, editor)
    assert status == 201, created
    poll_id: str = created["id"]
    return poll_id


@pytest.mark.slow
def test_2000_concurrent_voters_are_counted_exactly(app, server, editor):
    poll_id = make_poll(server, editor, multiple=True, max_choices=3)
    rng = random.Random(2026)
    ballots = [rng.sample(OPTIONS, rng.randint(1, 3)) for _ in range(VOTERS)]
    tokens = mint_readers(app, VOTERS)
    path = f"/api/v1/polls/{poll_id}/votes/mine"

    def cast(index: int) -> int:
        status, _ = server.request("PUT", path, {"options": ballots[index]}, tokens[index])
        return status

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = Counter(pool.map(cast, range(VOTERS)))
    assert statuses == {200: VOTERS}

    expected = Counter(option for ballot in ballots for option in ballot)
    status, view = server.request("GET", f"/api/v1/polls/{poll_id}", headers=editor)
    assert status == 200
    assert view["results"]["counts"] == {option: expected[option] for option in OPTIONS}
    assert view["results"]["total"] == VOTERS  # distinct voters, not ticks
    assert view["results"]["ticks"] == sum(len(b) for b in ballots) > VOTERS
    assert sum(view["results"]["percentages"].values()) == 100

    store = get_store_of(app)
    assert store.redis.hlen(store.keys.poll_voters(poll_id)) == VOTERS
    types = Counter(f["type"] for _, f in store.redis.xrange(store.keys.poll_events(poll_id)))
    assert types == {"poll.created": 1, "poll.vote": VOTERS}


@pytest.mark.slow
def test_repeats_racing_each_other_count_once(app, server, editor):
    poll_id = make_poll(server, editor)
    tokens = mint_readers(app, 100)
    path = f"/api/v1/polls/{poll_id}/votes/mine"
    jobs = [(index, OPTIONS[index % 5]) for index in range(100)] * 5
    random.Random(7).shuffle(jobs)

    def cast(job: tuple[int, str]) -> int:
        index, option = job
        return server.request("PUT", path, {"options": [option]}, tokens[index])[0]

    with ThreadPoolExecutor(THREADS) as pool:
        assert set(pool.map(cast, jobs)) == {200}
    _, view = server.request("GET", f"/api/v1/polls/{poll_id}", headers=editor)
    assert view["results"]["counts"] == {option: 20 for option in OPTIONS}
    assert view["results"]["total"] == 100


def test_one_readers_concurrent_changes_leave_exactly_one_vote(app, server, editor):
    poll_id = make_poll(server, editor)
    [me] = mint_readers(app, 1)
    path = f"/api/v1/polls/{poll_id}/votes/mine"
    rng = random.Random(11)
    picks = [rng.choice(OPTIONS) for _ in range(500)]

    def cast(option: str) -> int:
        return server.request("PUT", path, {"options": [option]}, me)[0]

    with ThreadPoolExecutor(THREADS) as pool:
        assert set(pool.map(cast, picks)) == {200}

    _, view = server.request("GET", f"/api/v1/polls/{poll_id}", headers=me)
    counts = view["results"]["counts"]
    assert view["results"]["total"] == 1
    assert sum(counts.values()) == 1
    assert len(view["mine"]) == 1 and counts[view["mine"][0]] == 1
    store = get_store_of(app)
    assert store.redis.hlen(store.keys.poll_voters(poll_id)) == 1
    types = Counter(f["type"] for _, f in store.redis.xrange(store.keys.poll_events(poll_id)))
    assert types["poll.vote"] == 1


def test_one_readers_racing_votes_and_withdrawals_stay_consistent(app, server, editor):
    poll_id = make_poll(server, editor, multiple=True)
    [me] = mint_readers(app, 1)
    path = f"/api/v1/polls/{poll_id}/votes/mine"
    rng = random.Random(5)
    jobs: list[list[str] | None] = [
        None if rng.random() < 0.3 else rng.sample(OPTIONS, rng.randint(1, 5))
        for _ in range(400)
    ]

    def cast(options: list[str] | None) -> int:
        if options is None:
            return server.request("DELETE", path, headers=me)[0]
        return server.request("PUT", path, {"options": options}, me)[0]

    with ThreadPoolExecutor(THREADS) as pool:
        assert set(pool.map(cast, jobs)) == {200}

    _, view = server.request("GET", f"/api/v1/polls/{poll_id}", headers=me)
    mine = view["mine"] or []
    assert view["results"]["counts"] == {o: int(o in mine) for o in OPTIONS}
    assert view["results"]["total"] == (1 if mine else 0)
