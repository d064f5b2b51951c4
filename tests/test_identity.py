"""Identity: reader tokens, API tokens, client addresses and their hashes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from engage import errors
from engage.identity import Identity, bearer_token, parse_address
from engage.store import tokens

SECRET = "identity-test-secret-0123456789"


def fixed_key(day: str) -> bytes:
    return (day * 8).encode()[:32]


def test_reader_tokens_round_trip() -> None:
    identity = Identity(SECRET, [])
    token = identity.mint_reader()
    assert identity.reader_from_token(token) == identity.reader_from_token(token)
    assert len({identity.mint_reader() for _ in range(50)}) == 50
    # Another secret neither accepts the token nor maps readers to the same hash.
    other = Identity(SECRET + "x", [])
    with pytest.raises(errors.InvalidReader):
        other.reader_from_token(token)
    assert other.reader_from_token(other.mint_reader()) != identity.reader_from_token(token)


def test_reader_hash_is_short_and_opaque() -> None:
    identity = Identity(SECRET, [])
    token = identity.mint_reader()
    reader = identity.reader_from_token(token)
    assert len(reader) == 12
    assert reader not in token and token.partition(".")[0] not in reader


@pytest.mark.parametrize("token", ["", ".", "x" * 200, "abc", "abc.", ".abc", "a.b"])
def test_bad_reader_tokens(token: str) -> None:
    with pytest.raises(errors.InvalidReader):
        Identity(SECRET, []).reader_from_token(token)


def request_from(app: Flask, peer: str, forwarded: str | None = None) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": peer}):
        from flask import request

        identity: Identity = app.extensions["engage.identity"]
        return identity.client_address(request)


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"TRUSTED_PROXIES": ["10.0.0.0/8", "fd00::/8", "127.0.0.1"]}


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.1", "203.0.113.5", "198.51.100.1"),  # untrusted peer: header ignored
        ("10.1.2.3", "203.0.113.5", "203.0.113.5"),
        ("10.1.2.3", "203.0.113.5, 10.9.9.9", "203.0.113.5"),  # two proxies
        ("10.1.2.3", "6.6.6.6, 203.0.113.5, 10.9.9.9", "203.0.113.5"),  # spoofed first hop
        ("10.1.2.3", None, "10.1.2.3"),
        ("10.1.2.3", "", "10.1.2.3"),
        ("10.1.2.3", "10.4.4.4", "10.1.2.3"),  # only proxies: the nearest one
        ("10.1.2.3", "bogus", "10.1.2.3"),
        ("fd00::1", "2001:DB8::0:5", "2001:db8::5"),  # IPv6, normalised
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        # The forms proxies really send: with ports, bracketed IPv6, IPv4-mapped.
        ("10.1.2.3", "203.0.113.5:51234", "203.0.113.5"),
        ("10.1.2.3", "[2001:db8::5]:443", "2001:db8::5"),
        ("10.1.2.3", "[2001:db8::5]", "2001:db8::5"),
        ("10.1.2.3", "::ffff:203.0.113.5", "203.0.113.5"),
        ("10.1.2.3", "203.0.113.5, 10.9.9.9:8080", "203.0.113.5"),  # a proxy with a port
        ("::ffff:10.1.2.3", "203.0.113.5", "203.0.113.5"),  # a dual-stack listener's peer
        ("::ffff:198.51.100.1", "203.0.113.5", "198.51.100.1"),
        ("10.1.2.3", "[2001:db8::5]:x", "10.1.2.3"),
        ("10.1.2.3", "203.0.113.5:", "10.1.2.3"),
    ],
)
def test_client_address(app: Flask, peer: str, forwarded: str | None, client: str) -> None:
    assert request_from(app, peer, forwarded) == client


def test_no_trusted_proxies_means_peer() -> None:
    app = Flask("probe")
    app.extensions["engage.identity"] = Identity(SECRET, [])
    assert request_from(app, "127.0.0.1", "203.0.113.5") == "127.0.0.1"


def test_address_hash_is_keyed_and_cached() -> None:
    identity = Identity(SECRET, [])
    fetched: list[str] = []

    def fetch(day: str) -> bytes:
        fetched.append(day)
        return fixed_key(day)

    a = identity.address_hashes("203.0.113.5", "20260101", fetch)[0]
    assert identity.address_hashes("203.0.113.5", "20260101", fetch)[0] == a
    assert identity.address_hashes("203.0.113.6", "20260101", fetch)[0] != a
    assert fetched == ["20260101"]
    assert identity.address_hashes("203.0.113.5", "20260102", fetch)[0] != a
    assert fetched == ["20260101", "20260102"]
    assert "203" not in a and len(a) == 12


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("203.0.113.5", "203.0.113.5"),
        (" 203.0.113.5:80 ", "203.0.113.5"),
        ("[2001:db8::1]:8443", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("[::ffff:cb00:7105]:1", "203.0.113.5"),
        ("fe80::1%eth0", "fe80::1"),
        ("", None), ("unknown", None), ("[2001:db8::1", None), ("1.2.3.4:port", None),
        ("1.2.3", None), ("_hidden", None),
    ],
)
def test_parse_address(text: str, parsed: str | None) -> None:
    ip = parse_address(text)
    assert (str(ip) if ip is not None else None) == parsed


def test_addresses_are_grouped_by_prefix() -> None:
    identity = Identity(SECRET, [])
    assert identity.networks("2001:db8:1:2:aaaa::1")[0] == "2001:db8:1:2::/64"
    assert identity.networks("2001:db8:1:2:ffff:ffff:ffff:ffff")[0] == "2001:db8:1:2::/64"
    assert identity.networks("2001:db8:1:3::1")[0] == "2001:db8:1:3::/64"
    assert identity.networks("203.0.113.5")[0] == "203.0.113.5/32"
    assert identity.networks("::ffff:203.0.113.5")[0] == "203.0.113.5/32"
    wide = Identity(SECRET, [], prefix_v4=24, prefix_v6=56)
    assert wide.networks("203.0.113.5")[0] == "203.0.113.0/24"
    assert wide.networks("2001:db8:1:2ff::1")[0] == "2001:db8:1:200::/56"

    def fetch(day: str) -> bytes:
        return fixed_key(day)

    same = {identity.address_hashes(f"2001:db8:1:2::{i:x}", "20260101", fetch)[0]
            for i in range(50)}
    assert len(same) == 1
    assert identity.address_hashes("2001:db8:1:3::1", "20260101", fetch)[0] not in same
    assert identity.address_hashes("::ffff:203.0.113.5", "20260101", fetch)[0] == \
        identity.address_hashes("203.0.113.5", "20260101", fetch)[0]


def test_bearer_token_parsing(app: Flask) -> None:
    cases = {
        "Bearer abc": "abc",
        "bearer  abc ": "abc",
        "Bearer": None,
        "Bearer   ": None,
        "Basic abc": None,
        "": None,
    }
    for header, expected in cases.items():
        with app.test_request_context("/", headers={"Authorization": header}):
            assert bearer_token() == expected, header


def test_api_tokens_stored_hashed(store: Any) -> None:
    value, record = tokens.create(store, "editor", "desk")
    token_id, _, secret = value[len("eng_"):].partition(".")
    raw = json.loads(store.redis.hget(store.keys.tokens, token_id))
    assert secret not in json.dumps(raw)
    assert raw["role"] == "editor" and raw["name"] == "desk"
    assert tokens.verify(store, value)["id"] == token_id
    for bad in (value + "x", value[:-1], f"eng_{token_id}.", "eng_.x", token_id, "",
                value.replace("eng_", "")):
        assert tokens.verify(store, bad) is None, bad
    assert "hash" not in tokens.list_all(store)[0]
    with pytest.raises(ValueError):
        tokens.create(store, "owner")


def test_address_nonce_shared_between_processes(store: Any, clock: Any) -> None:
    """Two app processes asking for the same day get the same nonce (SET NX)."""
    clock.set(datetime(2026, 1, 1, 12, tzinfo=UTC))
    first = tokens.address_nonce(store, "20260101")
    assert tokens.address_nonce(store, "20260101") == first
    assert len(first) == 32
    assert tokens.address_nonce(store, "20260102") != first
