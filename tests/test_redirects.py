"""No redirect takes its host from the request.

werkzeug's routing used to answer `GET /api/v1//widget` with `308 Location:
http://<the request's Host>/api/v1/widget`: anyone can send a Host, and a cache in
front would keep that answer for everyone. engage's own redirects are relative (the
dashboard's) or go to a URL from the store (`/r/<link>`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage.store import tokens
from tests.test_dashboard import sign_in
from tests.test_host_header import path_values

EVIL = "evil.example"
HOSTILE = {"Host": EVIL, "X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https",
           "Forwarded": f"host={EVIL};proto=https"}
PEER = "127.0.0.1"  # a trusted proxy: even its forwarded host is not believed


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"DEMO": True, "TRUSTED_PROXIES": [f"{PEER}/32"]}


def spellings(path: str) -> list[str]:
    """Other spellings of a path that routing used to tidy with a redirect: each slash
    doubled in turn, a trailing slash added or taken away."""
    found = [path[:i] + "/" + path[i:] for i, char in enumerate(path) if char == "/"]
    found.append(path.rstrip("/") if path.endswith("/") else path + "/")
    return found


def assert_no_request_host(response: Any, what: str) -> None:
    response.get_data()  # a streamed body runs to its end inside its request
    location = response.headers.get("Location")
    assert EVIL not in "\n".join(f"{k}: {v}" for k, v in response.headers.items()), what
    assert response.status_code not in (301, 308), (what, location)
    if location is not None:
        parts = urlsplit(location)
        assert not parts.netloc and location.startswith("/") and not location.startswith(
            "//"), (what, location)


def test_the_reported_double_slash_is_a_plain_404(client: FlaskClient) -> None:
    response = client.get("/api/v1//widget?article=korea-china-reset", headers=HOSTILE)
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert response.json["error"]["code"] == "not_found"


def test_no_spelling_of_any_route_redirects_to_the_request_host(
    app: Flask, client: FlaskClient, store: Any, admin: dict[str, str], editor: dict[str, str]
) -> None:
    values = path_values(app, store, admin, client)
    signed_in = app.test_client()
    assert sign_in(signed_in, tokens.create(store, "editor", "desk")[0]).status_code == 302
    callers = {"anonymous": (client, {}), "editor": (client, editor),
               "dashboard": (signed_in, {})}
    checked = 0
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        assert rule.redirect_to is None, rule.rule
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<[^>]*\b{name}>", values[name], path)
        for method in sorted((rule.methods or set()) & {"GET", "HEAD", "POST"}):
            for spelling in spellings(path):
                for who, (caller, headers) in callers.items():
                    response = caller.open(spelling + "?article=korea-china-reset",
                                           method=method, headers={**HOSTILE, **headers},
                                           environ_base={"REMOTE_ADDR": PEER})
                    assert_no_request_host(response, f"{method} {spelling} as {who}")
                    checked += 1
    assert checked > 500


def test_a_trailing_slash_is_served_not_redirected(client: FlaskClient, article: str) -> None:
    plain = client.get(f"/api/v1/articles/{article}/reactions", headers=HOSTILE)
    slashed = client.get(f"/api/v1/articles/{article}/reactions/", headers=HOSTILE)
    assert plain.status_code == slashed.status_code == 200
    assert slashed.json == plain.json


def test_dashboard_redirects_are_relative(client: FlaskClient, editor_token: str) -> None:
    response = client.get("/dashboard/polls?page=2", headers=HOSTILE)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard/signin?next=/dashboard/polls?page%3D2"
    page = client.get("/dashboard/signin", headers=HOSTILE).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    response = client.post("/dashboard/signin?next=/dashboard/polls", headers=HOSTILE,
                           data={"token": editor_token, "csrf_token": csrf.group(1)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard/polls"
    assert response.headers["Cache-Control"] == "private, no-store"


def test_a_link_redirect_goes_to_the_stored_url_whatever_the_host(
    client: FlaskClient, editor: dict[str, str], article: str
) -> None:
    stored = "https://news.example.com/seoul"
    links = client.put(f"/api/v1/articles/{article}/links", headers=editor,
                       json=[{"title": "Seoul's view", "url": stored}]).json["links"]
    response = client.get(f"/r/{links[0]['id']}", headers=HOSTILE)
    assert response.status_code == 302
    assert response.headers["Location"] == stored
    assert response.headers["Cache-Control"] == "no-store"


def test_a_rule_that_ends_in_a_slash_matches_without_a_redirect(
    redis_server: Any, tmp_path: Any
) -> None:
    """For routes added later: werkzeug would answer `/probe` with a 308 to `/probe/`."""
    from tests.conftest import make_app

    app = make_app(redis_server.url, tmp_path)
    app.add_url_rule("/probe/", "probe", lambda: "probed")
    client = app.test_client()
    for path in ("/probe/", "/probe", "//probe/", "/probe//"):
        response = client.get(path, headers=HOSTILE)
        assert_no_request_host(response, path)
        assert response.status_code in (200, 404), path
    assert client.get("/probe", headers=HOSTILE).get_data(as_text=True) == "probed"
