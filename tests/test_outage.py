"""Redis goes away and comes back: engage answers 503 quickly, then recovers by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage.store import get_store, tokens
from tests.conftest import ARTICLE, make_app
from tests.redis_server import RedisServer
from tests.test_articles import assert_error

READ = "/api/v1/articles/korea-china-reset/reactions"


@pytest.fixture
def outage_app(own_redis: RedisServer, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(own_redis.url, tmp_path, RETRY_AFTER=7)
    yield app
    with app.app_context():
        get_store().close()


def prepare(app: Flask) -> tuple[FlaskClient, dict[str, str], dict[str, str]]:
    client = app.test_client()
    with app.app_context():
        editor = {"Authorization": "Bearer " + tokens.create(get_store(), "editor")[0]}
    assert client.put("/api/v1/articles/korea-china-reset", json=ARTICLE,
                      headers=editor).status_code == 201
    reader = {"X-Engage-Reader": client.post("/api/v1/readers").get_json()["reader"]}
    assert client.put(READ + "/mine", json={"choice": "yes"}, headers=reader).status_code == 200
    return client, editor, reader


def assert_unavailable(response: Any) -> None:
    assert_error(response, 503, "storage_unavailable")
    assert response.headers["Retry-After"] == "7"


def timed(call: Any) -> Any:
    start = time.monotonic()
    response = call()
    elapsed = time.monotonic() - start
    assert elapsed < 2.0, elapsed
    return response


def test_stopped_redis_answers_503_then_recovers(outage_app: Flask,
                                                 own_redis: RedisServer) -> None:
    client, editor, reader = prepare(outage_app)
    own_redis.stop()

    assert_unavailable(timed(lambda: client.get(READ)))
    assert_unavailable(timed(lambda: client.get(READ, headers=reader)))
    assert_unavailable(timed(lambda: client.put(READ + "/mine", json={"choice": "no"},
                                                headers=reader)))
    assert_unavailable(timed(lambda: client.delete(READ + "/mine", headers=reader)))
    assert_unavailable(timed(lambda: client.get("/api/v1/articles/korea-china-reset")))
    assert_unavailable(timed(lambda: client.post("/api/v1/readers")))
    assert_unavailable(timed(lambda: client.get("/api/v1/readers/me/data", headers=reader)))
    assert_unavailable(timed(lambda: client.delete("/api/v1/readers/me/data", headers=reader)))
    assert_unavailable(timed(lambda: client.post("/api/v1/readers/renew", headers=reader)))
    assert_unavailable(timed(lambda: client.get("/api/v1/reactions?article=korea-china-reset")))
    assert_unavailable(timed(lambda: client.put("/api/v1/articles/korea-china-reset",
                                                json=ARTICLE, headers=editor)))
    ready = timed(lambda: client.get("/readyz"))
    assert ready.status_code == 503
    assert ready.get_json()["error"]["code"] == "storage_unavailable"
    assert "Retry-After" in ready.headers
    assert timed(lambda: client.get("/healthz")).status_code == 200
    # Bad input is still a 4xx, not a 503 or a 500, when it can be judged without Redis
    # (whether a well-formed choice is the article's needs its reaction set: docs/sites.md).
    assert_error(client.put(READ + "/mine", json={"choice": "may be"}, headers=reader), 422)

    # The same port comes back (without persistence, so the data is gone; that is fine
    # for this test: it is about the connection, not the data).
    own_redis.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            break
        time.sleep(0.05)
    assert client.get("/readyz").status_code == 200
    assert time.monotonic() < deadline
    client, _, reader = prepare(outage_app)
    assert client.get(READ, headers=reader).get_json()["mine"] == "yes"


def test_paused_redis_does_not_hang(outage_app: Flask, own_redis: RedisServer) -> None:
    """A Redis that accepts but never answers costs one socket timeout, not a hang."""
    client, _, reader = prepare(outage_app)
    own_redis.pause()
    try:
        assert_unavailable(timed(lambda: client.put(READ + "/mine", json={"choice": "no"},
                                                    headers=reader)))
        assert_unavailable(timed(lambda: client.get(READ)))
    finally:
        own_redis.resume()
    deadline = time.monotonic() + 5
    while client.get(READ).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The vote sent while Redis was frozen may or may not have landed, but never twice.
    counts = client.get(READ).get_json()["counts"]
    assert counts["yes"] + counts["no"] == 1
