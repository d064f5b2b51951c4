"""The per-request machinery: hooks run once each, in order, for every kind of request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView
from prometheus_client import REGISTRY

from engage import Engage


def test_plain_functions_are_asked_about_once(app: Engage) -> None:
    def hook() -> None:
        return None

    assert app.ensure_sync(hook) is hook
    assert hook in app._plain_functions
    assert app.ensure_sync(hook) is hook


def test_bound_methods_are_remembered_by_their_function(app: Engage) -> None:
    class Ping(MethodView):
        def get(self) -> str:
            return "pong"

    app.add_url_rule("/ping-view", view_func=Ping.as_view("ping_view"))
    client = app.test_client()
    assert client.get("/ping-view").text == "pong"
    remembered = len(app._plain_functions)
    for _ in range(5):
        assert client.get("/ping-view").text == "pong"
    assert len(app._plain_functions) == remembered
    assert Ping.get in app._plain_functions


def test_coroutine_functions_still_go_through_flask(app: Engage) -> None:
    async def view() -> str:
        return "async"

    for _ in range(2):
        try:
            synced = app.ensure_sync(view)
        except RuntimeError:  # Flask without its async extra refuses them
            pass
        else:
            assert synced is not view
    assert view not in app._plain_functions


def test_other_callables_are_left_to_flask(app: Engage) -> None:
    class Hook:
        def __call__(self) -> None:
            return None

    hook = Hook()
    assert app.ensure_sync(hook) is hook
    assert len([f for f in app._plain_functions if f is hook]) == 0


def test_engage_registers_few_app_hooks(app: Flask) -> None:
    # One hook per phase for the log line and metrics, one for the limiter, one for
    # the API checks, one for CORS + Vary + limiter headers, one for security headers.
    assert len(app.before_request_funcs[None]) == 3
    assert len(app.after_request_funcs[None]) == 3
    assert len(app.teardown_request_funcs[None]) == 2


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"LOG_JSON": True, "ALLOWED_ORIGINS": ["https://news.example.com"]}


def in_progress() -> float:
    return REGISTRY.get_sample_value("engage_http_requests_in_progress") or 0.0


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
    before = in_progress()
    lines.clear()
    response = client.open(path.format(a=article), method=method, **kwargs)
    assert response.status_code == status
    assert len(lines) == 1
    assert json.loads(lines[0])["status"] == status
    assert json.loads(lines[0])["request_id"] == response.headers["X-Request-ID"]
    assert in_progress() == before


def test_api_answers_carry_cors_vary_and_limit_headers_in_order(client: FlaskClient) -> None:
    response = client.post("/api/v1/readers", headers={"Origin": "https://news.example.com"})
    assert response.status_code == 201
    names = [name for name, _ in response.headers]
    # flask-cors first, then the merged Vary, then Flask-Limiter's headers, then the
    # request id written with the log line last of all.
    assert names.index("Access-Control-Allow-Origin") < names.index("Vary") \
        < names.index("X-RateLimit-Limit") < names.index("X-Request-ID")
    assert response.headers["Vary"] == "Origin"
    assert names[-1] == "X-Request-ID"
