"""Request logs: one JSON line per request, request ids, nothing identifying."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage import metrics


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"LOG_JSON": True}


def test_one_json_line_per_request(client: FlaskClient, article: str, lines: list[str]) -> None:
    lines.clear()
    response = client.get(f"/api/v1/articles/{article}/reactions",
                          headers={"X-Request-ID": "lb-1234.abc"})
    assert response.headers["X-Request-ID"] == "lb-1234.abc"
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["event"] == "request"
    assert entry["method"] == "GET"
    assert entry["route"] == "/api/v1/articles/{article_id}/reactions"
    assert entry["status"] == 200
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert entry["request_id"] == "lb-1234.abc"
    assert entry["ts"].endswith("+00:00")


@pytest.mark.parametrize("offered", ["", "has space", "x" * 65, "a/b<x>", "é"])
def test_unsafe_request_ids_are_replaced(client: FlaskClient, lines: list[str],
                                         offered: str) -> None:
    lines.clear()
    response = client.get("/healthz", headers={"X-Request-ID": offered})
    rid = response.headers["X-Request-ID"]
    assert rid != offered and len(rid) == 32 and rid.isalnum()
    assert json.loads(lines[0])["request_id"] == rid


def test_generated_ids_differ(client: FlaskClient) -> None:
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


def test_no_address_path_or_token_in_the_line(client: FlaskClient, article: str,
                                              lines: list[str]) -> None:
    reader = client.post("/api/v1/readers").json["reader"]
    lines.clear()
    client.put(
        f"/api/v1/articles/{article}/reactions/mine?secret=query-secret",
        json={"choice": "yes"},
        headers={"X-Engage-Reader": reader, "X-Forwarded-For": "198.51.100.23"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert len(lines) == 1
    for secret in ("203.0.113.9", "198.51.100.23", reader, "query-secret", article):
        assert secret not in lines[0]
    assert json.loads(lines[0])["route"] == "/api/v1/articles/{article_id}/reactions/mine"


def test_refused_and_unmatched_requests_are_logged(client: FlaskClient,
                                                   lines: list[str]) -> None:
    lines.clear()
    client.get("/definitely/not/here")
    client.put("/api/v1/articles/a1/reactions/mine", data="x", content_type="text/plain")
    statuses = [(json.loads(line)["route"], json.loads(line)["status"]) for line in lines]
    assert statuses[0] == ("unmatched", 404)
    assert statuses[1][1] == 415


@pytest.mark.parametrize("app_config", [{"LOG_JSON": False}])
def test_plain_lines_when_json_is_off(client: FlaskClient, lines: list[str]) -> None:
    lines.clear()
    response = client.get("/healthz")
    assert lines == [lines[0]]
    assert lines[0].startswith("GET /healthz 200 ")
    assert lines[0].endswith(response.headers["X-Request-ID"])


@pytest.mark.parametrize("app_config", [
    {"LOG_JSON": True, "ALLOWED_ORIGINS": ["https://news.example.com"]},
])
@pytest.mark.parametrize("method, path, kwargs, status", [
    ("GET", "/api/v1/articles/{a}/reactions", {}, 200),
    ("GET", "/nowhere", {}, 404),
    ("PUT", "/api/v1/articles/{a}/reactions/mine", {"data": "x", "content_type": "text/plain",
                                                     "headers": {"X-Engage-Reader": "x"}}, 415),
    ("GET", "/api/v1/stats/articles", {}, 401),
    ("POST", "/api/v1/readers", {"headers": {"Origin": "https://news.example.com"}}, 201),
])
def test_every_request_is_logged_counted_and_released_once(
        client: FlaskClient, article: str, lines: list[str], method: str, path: str,
        kwargs: dict[str, Any], status: int) -> None:
    def in_progress() -> float | None:
        return metrics.app_registry().get_sample_value("engage_http_requests_in_progress")

    before = in_progress()
    assert before is not None
    lines.clear()
    response = client.open(path.format(a=article), method=method, **kwargs)
    assert response.status_code == status
    assert len(lines) == 1
    assert json.loads(lines[0])["status"] == status
    assert json.loads(lines[0])["request_id"] == response.headers["X-Request-ID"]
    assert in_progress() == before
