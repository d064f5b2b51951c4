"""Concurrent poll votes through a real threaded HTTP server: results stay exact."""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from engage.identity import get_identity
from engage.store import get_store

THREADS = 50
VOTERS = 2000
OPTIONS = ["o1", "o2", "o3", "o4", "o5"]


@pytest.fixture
def app_config() -> dict[str, Any]:
    # Every client shares 127.0.0.1; the address throttle is tested elsewhere.
    return {"THROTTLE_VOTES": 1_000_000, "REDIS_MAX_CONNECTIONS": THREADS + 20}


class _QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # one kept-alive connection per client thread

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.local.conn = conn
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)


@pytest.fixture
def server(app: Flask) -> Iterator[Client]:
    live: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(target=live.serve_forever, daemon=True)
    thread.start()
    yield Client(live.server_port)
    live.shutdown()
    thread.join(10)
    live.server_close()


def readers(app: Flask, n: int) -> list[dict[str, str]]:
    """Signed reader tokens minted in-process (the HTTP mint is rate limited per address)."""
    with app.app_context():
        identity = get_identity()
        return [{"X-Engage-Reader": identity.mint_reader()} for _ in range(n)]


def make_poll(client: Client, editor: dict[str, str], **body: Any) -> str:
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
    tokens = readers(app, VOTERS)
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
    tokens = readers(app, 100)
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
    [me] = readers(app, 1)
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
    [me] = readers(app, 1)
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


def get_store_of(app: Flask) -> Any:
    with app.app_context():
        return get_store()
