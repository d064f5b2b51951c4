"""No raw client address reaches Redis; X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from engage.identity import get_identity
from engage.store import tokens
from tests.conftest import ARTICLE, Clock
from tests.test_articles import assert_error

MINE = "/api/v1/articles/korea-china-reset/reactions/mine"
V4 = "203.0.113.77"
V6 = "2001:db8:77::1:77"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"TRUSTED_PROXIES": ["127.0.0.1/32"], "THROTTLE_VOTES": 3,
            "READER_MINT_LIMIT": "4 per minute"}


def address_forms(address: str) -> list[bytes]:
    ip = ipaddress.ip_address(address)
    forms = {str(ip), ip.exploded, address}
    if isinstance(ip, ipaddress.IPv6Address):
        forms.add(ip.exploded.replace(":", ""))  # 32 hex digits: cannot appear by chance
    return [f.encode() for f in forms] + [f.upper().encode() for f in forms] + [ip.packed]


def everything_in(client: redis.Redis) -> list[bytes]:
    """Every key name and every value, whatever the type, as raw bytes."""
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key).decode()
        if kind == "string":
            out.append(client.get(key) or b"")
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                out += [field, value]
        elif kind == "list":
            out += client.lrange(key, 0, -1)
        elif kind == "set":
            out += list(client.smembers(key))
        elif kind == "zset":
            for member, score in client.zrange(key, 0, -1, withscores=True):
                out += [member, str(score).encode()]
        elif kind == "stream":
            for entry_id, fields in client.xrange(key):
                out.append(entry_id)
                for field, value in fields.items():
                    out += [field, value]
        else:
            raise AssertionError(f"unexpected type {kind} of {key!r}")
    return out


def test_no_raw_address_in_redis(client: FlaskClient, editor: dict[str, str],
                                 redis_server: Any) -> None:
    client.put("/api/v1/articles/korea-china-reset", json=ARTICLE, headers=editor)
    for address in (V4, V6):
        via = {"X-Forwarded-For": f"{address}, 127.0.0.1"}
        readers = []
        for _ in range(4):
            response = client.post("/api/v1/readers", headers=via)
            assert response.status_code == 201
            readers.append({"X-Engage-Reader": response.get_json()["reader"], **via})
        assert_error(client.post("/api/v1/readers", headers=via), 429)
        assert client.put(MINE, json={"choice": "yes"}, headers=readers[0]).status_code == 200
        assert client.put(MINE, json={"choice": "no", "reason": "biased"},
                          headers=readers[0]).status_code == 200
        assert client.delete(MINE, headers=readers[0]).status_code == 200
        assert_error(client.put(MINE, json={"choice": "no"}, headers=readers[1]), 429)
        assert client.get(MINE[: -len("/mine")], headers=readers[2]).status_code == 200
        assert client.get("/api/v1/reactions?article=korea-china-reset", headers=via).status_code \
            == 200
        assert_error(client.put("/api/v1/articles/ghost/reactions/mine", json={"choice": "yes"},
                                headers=readers[3]), 404)
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port)
    blobs = everything_in(raw)
    assert any(b"thr:" in b for b in blobs), "the throttle keys should exist"
    assert any(b":rl" in b for b in blobs), "the mint limiter keys should exist"
    for address in (V4, V6):
        for form in address_forms(address):
            hits = [b for b in blobs if form in b]
            assert not hits, (address, form, hits[:3])
    raw.close()


def throttle_keys(store: Any) -> set[str]:
    return set(store.redis.scan_iter(match="*:thr:*", count=1000))


def vote_as(client: FlaskClient, peer: str, forwarded: str) -> int:
    """A fresh reader votes from `peer`, which says it forwards for `forwarded`."""
    assert isinstance(client.application, Flask)
    with client.application.app_context():
        token = get_identity().mint_reader()
    headers = {"X-Engage-Reader": token, "X-Forwarded-For": forwarded}
    response = client.put(MINE, json={"choice": "yes"}, headers=headers,
                          environ_base={"REMOTE_ADDR": peer})
    return response.status_code


def test_forwarded_for_only_from_trusted_peer(client: FlaskClient, article: str,
                                              store: Any) -> None:
    # An untrusted peer cannot pick its bucket by sending a header: one bucket.
    assert vote_as(client, "198.51.100.5", "203.0.113.1") == 200
    assert vote_as(client, "198.51.100.5", "203.0.113.2") == 200
    assert len(throttle_keys(store)) == 1
    # Through the trusted proxy, each forwarded client gets its own bucket.
    assert vote_as(client, "127.0.0.1", "203.0.113.1") == 200
    assert vote_as(client, "127.0.0.1", "203.0.113.2") == 200
    assert len(throttle_keys(store)) == 3
    # A proxy chain: the last untrusted hop is the client, whatever the first hop claims.
    assert vote_as(client, "127.0.0.1", "10.9.9.9, 203.0.113.2, 127.0.0.1") == 200
    assert len(throttle_keys(store)) == 3
    # The untrusted peer's bucket is full now (3 votes) even with a fresh forwarded value.
    assert vote_as(client, "198.51.100.5", "203.0.113.3") == 200
    assert vote_as(client, "198.51.100.5", "203.0.113.4") == 429


def test_garbled_forwarded_for_falls_back_to_peer(app: Flask) -> None:
    with app.test_request_context(
        "/", headers={"X-Forwarded-For": "not-an-ip"}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    ):
        from flask import request

        assert get_identity().client_address(request) == "127.0.0.1"
    with app.test_request_context(
        "/", headers={"X-Forwarded-For": V6}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    ):
        from flask import request

        assert get_identity().client_address(request) == ipaddress.ip_address(V6).compressed


def test_address_key_rotates_by_day(app: Flask, client: FlaskClient, article: str, store: Any,
                                    clock: Clock) -> None:
    clock.set(datetime(2026, 3, 1, 23, 59, tzinfo=UTC))
    assert vote_as(client, "127.0.0.1", V4) == 200
    clock.advance(120)
    assert vote_as(client, "127.0.0.1", V4) == 200
    # Same address, two days: two unrelated buckets and two keys, each expiring.
    assert len(throttle_keys(store)) == 2
    for day in ("20260301", "20260302"):
        key = store.keys.addrkey(day)
        assert 0 < store.redis.ttl(key) <= 2 * 86400
    assert store.redis.get(store.keys.addrkey("20260301")) != store.redis.get(
        store.keys.addrkey("20260302"))
    with app.app_context():
        identity = get_identity()

        def fetch(day: str) -> bytes:
            return tokens.address_key(store, day)

        first = identity.address_hash(V4, "20260301", fetch)
        second = identity.address_hash(V4, "20260302", fetch)
        assert first != second
        assert identity.address_hash(V4, "20260302", fetch) == second
        assert identity.address_hash("203.0.113.78", "20260302", fetch) != second
        # Only today's key stays in memory.
        assert list(identity._day_keys) == ["20260302"]
