"""Contract tests for `POST /api/v1/readers` and reader tokens."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage.config import ConfigError, load_config
from engage.identity import get_identity
from tests.test_articles import assert_error

VOTE = "/api/v1/articles/korea-china-reset/reactions/mine"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"READER_MINT_LIMIT": "3 per minute"}


def test_mint_returns_a_signed_token(client: FlaskClient) -> None:
    response = client.post("/api/v1/readers")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"reader"}
    token = body["reader"]
    assert isinstance(token, str) and 10 < len(token) <= 128
    assert token != client.post("/api/v1/readers").get_json()["reader"]


def test_mint_is_rate_limited_per_address(client: FlaskClient) -> None:
    for _ in range(3):
        assert client.post("/api/v1/readers").status_code == 201
    error = assert_error(client.post("/api/v1/readers"), 429, "rate_limited")
    assert error["message"]
    response = client.post("/api/v1/readers")
    assert int(response.headers["Retry-After"]) >= 1
    # Another address is not affected.
    other = client.post("/api/v1/readers", environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert other.status_code == 201


def test_mint_accepts_no_body_and_ignores_get(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/readers"), 405, "method_not_allowed")


def test_token_identifies_one_reader(app: Flask, client: FlaskClient) -> None:
    token = client.post("/api/v1/readers").get_json()["reader"]
    other = client.post("/api/v1/readers").get_json()["reader"]
    with app.app_context():
        identity = get_identity()
        assert identity.reader_from_token(token) == identity.reader_from_token(token)
        assert identity.reader_from_token(token) != identity.reader_from_token(other)
        # The reader hash is opaque: it does not contain the token or its random part.
        assert token.split(".")[0] not in identity.reader_from_token(token)


def test_token_from_another_secret_is_rejected(
    app: Flask, client: FlaskClient, article: str, redis_server: Any, tmp_path: Any
) -> None:
    from tests.conftest import make_app

    stranger = make_app(redis_server.url, tmp_path, SECRET_KEY="another-secret-of-enough-length")
    foreign = stranger.test_client().post("/api/v1/readers").get_json()["reader"]
    response = client.put(VOTE, json={"choice": "yes"}, headers={"X-Engage-Reader": foreign})
    assert_error(response, 401, "invalid_reader")


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "abc.def", "x" * 129, "a.b.c", "\u00e9t\u00e9.sig", "Zm9v.AAAAAAAA"],
)
def test_forged_or_malformed_tokens_are_401(
    client: FlaskClient, article: str, token: str, store: Any
) -> None:
    from tests.test_articles import redis_snapshot

    before = redis_snapshot(store)
    headers = {"X-Engage-Reader": token}
    assert_error(client.put(VOTE, json={"choice": "yes"}, headers=headers), 401, "invalid_reader")
    assert_error(client.delete(VOTE, headers=headers), 401, "invalid_reader")
    assert_error(client.get("/api/v1/articles/korea-china-reset/reactions", headers=headers),
                 401, "invalid_reader")
    assert redis_snapshot(store) == before


def test_tampered_token_is_401(client: FlaskClient, article: str) -> None:
    token = client.post("/api/v1/readers").get_json()["reader"]
    value, _, signature = token.rpartition(".")
    tampered = value[:-1] + ("A" if value[-1] != "A" else "B") + "." + signature
    response = client.put(VOTE, json={"choice": "yes"}, headers={"X-Engage-Reader": tampered})
    assert_error(response, 401, "invalid_reader")


def test_vote_without_token_is_401(client: FlaskClient, article: str) -> None:
    assert_error(client.put(VOTE, json={"choice": "yes"}), 401, "invalid_reader")
    assert_error(client.delete(VOTE), 401, "invalid_reader")


def test_the_mint_budgets_are_a_key_per_level_living_a_minute(
    client: FlaskClient, store: Any
) -> None:
    for _ in range(4):
        client.post("/api/v1/readers")
    keys = list(store.redis.scan_iter(store.keys.prefix + ":rl:*:mint:*"))
    assert len(keys) == 2  # 127.0.0.1 and its /24, hashed
    assert not any("127.0.0" in key for key in keys)
    for key in keys:
        assert 0 < store.redis.ttl(key) <= 60
        assert store.redis.get(key) == "3"  # a refused mint spends nothing


@pytest.mark.parametrize("raw, count", [("30", 30), ("30 per minute", 30), ("7/minute", 7),
                                        (" 12 per 1 minute ", 12)])
def test_mint_limits_count_a_minute(raw: str, count: int) -> None:
    assert load_config({"ENGAGE_READER_MINT_LIMIT": raw})["READER_MINT_LIMIT"] == count


@pytest.mark.parametrize("raw", ["30 per hour", "30;60 per minute", "many", "-1"])
def test_other_mint_periods_stop_the_start(raw: str) -> None:
    with pytest.raises(ConfigError, match="ENGAGE_READER_MINT_LIMIT_V6_48"):
        load_config({"ENGAGE_READER_MINT_LIMIT_V6_48": raw})
