"""No raw client address reaches Redis; X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from engage.identity import Identity, get_identity
from engage.store import get_store, tokens
from engage.store.embedded import AOF_DIR, EmbeddedRedis
from tests.conftest import ARTICLE, Clock, make_app
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
    assert any(b":rl" in b for b in blobs), "the mint budget keys should exist"
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
    # An untrusted peer cannot pick its bucket by sending a header: one bucket (and its
    # /24's, as every IPv4 address has).
    assert vote_as(client, "198.51.100.5", "203.0.113.1") == 200
    assert vote_as(client, "198.51.100.5", "203.0.113.2") == 200
    assert len(throttle_keys(store)) == 2
    # Through the trusted proxy, each forwarded client gets its own bucket; both share
    # one /24.
    assert vote_as(client, "127.0.0.1", "203.0.113.1") == 200
    assert vote_as(client, "127.0.0.1", "203.0.113.2") == 200
    assert len(throttle_keys(store)) == 5
    # A proxy chain: the last untrusted hop is the client, whatever the first hop claims.
    assert vote_as(client, "127.0.0.1", "10.9.9.9, 203.0.113.2, 127.0.0.1") == 200
    assert len(throttle_keys(store)) == 5
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
    # Same address, two days: two unrelated buckets (the address's and its /24's, each
    # day) and two keys, each expiring.
    assert len(throttle_keys(store)) == 4
    for day in ("20260301", "20260302"):
        key = store.keys.addrnonce(day)
        assert 0 < store.redis.ttl(key) <= 2 * 86400
    assert store.redis.get(store.keys.addrnonce("20260301")) != store.redis.get(
        store.keys.addrnonce("20260302"))
    with app.app_context():
        identity = get_identity()

        def fetch(day: str) -> bytes:
            return tokens.address_nonce(store, day)

        first = identity.address_hashes(V4, "20260301", fetch)[0]
        second = identity.address_hashes(V4, "20260302", fetch)[0]
        assert first != second
        assert identity.address_hashes(V4, "20260302", fetch)[0] == second
        assert identity.address_hashes("203.0.113.78", "20260302", fetch)[0] != second
        # Only today's key stays in memory.
        assert list(identity._day_keys) == ["20260302"]


HASH_IN_KEY = re.compile(rb"(?:thr:|addr:)([A-Za-z0-9_-]{12})")


def key_candidates(blob: bytes) -> set[bytes]:
    """What a thief holding Redis would try as the hashing key: every value as it is,
    hex-decoded, and digested."""
    out = {blob[:64], blob.strip()[:64], hashlib.sha256(blob).digest()}
    try:
        out.add(bytes.fromhex(blob.decode())[:64])
    except ValueError:
        pass
    return {c for c in out if c}


def hashes_of(address: str, key: bytes) -> set[str]:
    ip = ipaddress.ip_address(address)
    prefixes = (64, 56, 48) if ip.version == 6 else (32, 24)
    inputs = {address, str(ip), ip.exploded,
              *(str(ipaddress.ip_network(f"{ip}/{n}", strict=False)) for n in prefixes)}
    out = set()
    for text in inputs:
        for digest in (hashlib.blake2b(text.encode(), key=key, digest_size=9).digest(),
                       hmac.new(key, text.encode(), hashlib.sha256).digest()[:9]):
            out.add(base64.urlsafe_b64encode(digest).decode())
    return out


def test_redis_alone_cannot_match_hashes_to_addresses(short_dir: Path) -> None:
    """A copy of everything Redis holds (its files are the owner's alone) does not tell
    which of a list of known addresses voted."""
    app = make_app("", short_dir, REDIS_URL=None, DATA_DIR=str(short_dir),
                   THROTTLE_VOTES=3, READER_MINT_LIMIT="5 per minute")
    embedded = EmbeddedRedis(short_dir)
    client = app.test_client()
    with app.app_context():
        store = get_store()
        editor = {"Authorization": f"Bearer {tokens.create(store, 'editor', 'e')[0]}"}
    assert client.put("/api/v1/articles/korea-china-reset", json=ARTICLE,
                      headers=editor).status_code == 201
    known = [f"198.51.100.{i}" for i in range(1, 21)]
    known += [f"2001:db8:5:{i:x}::1" for i in range(1, 6)]
    for address in known:
        environ = {"REMOTE_ADDR": address}
        reader = client.post("/api/v1/readers", environ_base=environ).get_json()["reader"]
        assert client.put(MINE, json={"choice": "yes"}, headers={"X-Engage-Reader": reader},
                          environ_base=environ).status_code == 200

    raw = redis.Redis(unix_socket_path=str(embedded.socket))
    try:
        blobs = everything_in(raw)
        raw.save()
    finally:
        raw.close()
    stored = {m.group(1).decode() for b in blobs for m in HASH_IN_KEY.finditer(b)}
    assert len(stored) >= len(known)  # a throttle key and a mint budget key per address

    # The app, holding the secret, does find them: the hashes are where the test looks.
    day = store.keys.day_stamp(store.now())
    with app.app_context():
        identity = get_identity()
        assert identity.address_hashes(known[0], day, lambda d: tokens.address_nonce(store, d))[0] \
            in stored
        for address in (known[0], known[-1]):  # the /24's, the /56's and the /48's too
            networks = identity.address_hashes(address, day,
                                               lambda d: tokens.address_nonce(store, d))[1]
            assert networks and set(networks.values()) <= stored
    # The thief, holding every key and value (and engage's code, but not the secret), does not.
    for blob in blobs:
        for key in key_candidates(blob):
            thief = Identity("a-guess-at-the-secret-0123456789", [])
            for address in known:
                assert not hashes_of(address, key) & stored, (address, blob[:40])
                assert thief.address_hashes(address, day, lambda d, k=key: k)[0] not in stored
                assert not set(thief.address_hashes(address, day,
                                                    lambda d, k=key: k)[1].values()) & stored

    embedded.stop()
    with app.app_context():
        get_store().close()
    aof = short_dir / AOF_DIR
    assert stat.S_IMODE(aof.stat().st_mode) == 0o700
    written = [*aof.iterdir(), short_dir / "engage.rdb", short_dir / "redis.log"]
    assert any(path.name.endswith(".incr.aof") for path in written)
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, (path.name, oct(mode))
