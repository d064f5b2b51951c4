"""Conditional GET of a shared read: which validators answer 304, 412 or the full body."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

BATCH = "/api/v1/reactions?article=korea-china-reset"


@pytest.fixture
def tag(client: FlaskClient, article: str) -> str:
    first = client.get(BATCH)
    assert first.status_code == 200
    return str(first.headers["ETag"])


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("conditions, status", [
    ({}, 200),
    ({"If-None-Match": "{tag}"}, 304),
    ({"If-None-Match": "W/{tag}"}, 304),
    ({"If-None-Match": '"other", {tag}'}, 304),
    ({"If-None-Match": "*"}, 304),
    ({"If-None-Match": '"other", W/"more"'}, 200),
    ({"If-None-Match": ""}, 200),
    ({"If-None-Match": "garbage without quotes"}, 200),
    ({"If-Match": "{tag}"}, 200),
    ({"If-Match": '"other"'}, 412),
    ({"If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"}, 200),
    ({"Range": "bytes=0-3"}, 200),
])
def test_validators(client: FlaskClient, tag: str, method: str,
                    conditions: dict[str, str], status: int) -> None:
    headers = {k: v.format(tag=tag) for k, v in conditions.items()}
    response = client.open(BATCH, method=method, headers=headers)
    assert response.status_code == status, headers
    assert response.headers["ETag"] == tag
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    if status == 304 or method == "HEAD":
        assert response.get_data() == b""
    else:
        assert response.json["articles"]["korea-china-reset"]["total"] == 0


def test_a_write_ignores_if_none_match(client: FlaskClient, article: str,
                                       reader: dict[str, str]) -> None:
    headers: dict[str, Any] = {**reader, "If-None-Match": "*"}
    response = client.put(f"/api/v1/articles/{article}/reactions/mine",
                          json={"choice": "yes"}, headers=headers)
    assert response.status_code == 200 and response.json["counts"]["yes"] == 1
    assert "ETag" not in response.headers


def test_private_answers_carry_no_validator(client: FlaskClient, article: str,
                                            reader: dict[str, str]) -> None:
    response = client.get(f"/api/v1/articles/{article}/reactions",
                          headers={**reader, "If-None-Match": "*"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in response.headers
