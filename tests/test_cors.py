"""CORS: only allowlisted publisher origins, never `null`, never credentials."""

from __future__ import annotations

from typing import Any

import pytest

ALLOWED = "https://news.example.com"
OTHER_ALLOWED = "http://localhost:8080"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"ALLOWED_ORIGINS": [ALLOWED, OTHER_ALLOWED, "null"]}


def vary(response: Any) -> list[str]:
    lines = response.headers.getlist("Vary")
    assert len(lines) == 1, lines  # one merged header
    return [v.strip() for v in lines[0].split(",")]


def cors_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize("origin", [ALLOWED, OTHER_ALLOWED])
def test_allowed_origin_is_echoed_with_vary(client, article, origin):
    response = client.get(f"/api/v1/articles/{article}/reactions", headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in vary(response) and "X-Engage-Reader" in vary(response)
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("origin", [
    "null",
    "https://evil.example.com",
    "https://news.example.com.evil.com",
    "https://newsXexample.com",
    "http://news.example.com",
    "https://news.example.com:8443",
    "https://NEWS.example.com.evil",
    "*",
    "",
])
def test_other_origins_get_no_cors_headers(client, article, origin):
    response = client.get(f"/api/v1/articles/{article}/reactions", headers={"Origin": origin})
    assert response.status_code == 200
    assert cors_headers(response) == {}
    assert "Origin" in vary(response)  # a shared cache must not reuse it for another origin
    preflight = client.options(
        f"/api/v1/articles/{article}/reactions/mine",
        headers={"Origin": origin, "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "content-type,x-engage-reader"},
    )
    assert cors_headers(preflight) == {}


def test_preflight_for_a_vote_is_answered(client, article):
    response = client.options(
        f"/api/v1/articles/{article}/reactions/mine",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "content-type,x-engage-reader"},
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "PUT" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "x-engage-reader" in allowed and "content-type" in allowed
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in vary(response)


def test_cors_covers_the_widget_reads_and_impressions(client, article):
    for path, method in [(f"/api/v1/widget?article={article}", "GET"),
                         (f"/api/v1/articles/{article}/links/impressions", "POST"),
                         ("/api/v1/readers", "POST")]:
        response = client.options(path, headers={
            "Origin": ALLOWED, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type"})
        assert response.headers.get("Access-Control-Allow-Origin") == ALLOWED, path


def test_redirect_and_pages_carry_no_cors(client):
    response = client.get("/widget.js", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers
    response = client.get("/healthz", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers


class TestNoAllowlist:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"ALLOWED_ORIGINS": []}

    def test_nobody_is_allowed(self, client, article):
        response = client.get(f"/api/v1/articles/{article}/reactions",
                              headers={"Origin": ALLOWED})
        assert cors_headers(response) == {}


class TestSingleOrigin:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"ALLOWED_ORIGINS": ["https://news.example.com/"]}

    def test_one_allowed_origin_still_varies(self, client, article):
        response = client.get(f"/api/v1/articles/{article}/reactions",
                              headers={"Origin": ALLOWED})
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "Origin" in vary(response)
        response = client.get(f"/api/v1/articles/{article}/reactions",
                              headers={"Origin": "https://news-example.com"})
        assert cors_headers(response) == {}
