"""Contract tests for `PUT`/`GET /api/v1/articles/<id>` and the error shape they share."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from engage.identity import require_role
from engage.store import tokens
from tests.conftest import ARTICLE

URL = "/api/v1/articles/korea-china-reset"


def assert_error(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's one error shape, with the expected status (and code when given)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"}
    assert isinstance(error["code"], str) and error["code"].replace("_", "").isalpha()
    assert error["code"] == error["code"].lower()
    assert isinstance(error["message"], str) and error["message"]
    if "fields" in error:
        assert status == 422
        assert all(
            isinstance(v, list) and all(isinstance(m, str) for m in v)
            for v in error["fields"].values()
        )
    if code is not None:
        assert error["code"] == code
    return error


def redis_snapshot(store: Any) -> dict[str, Any]:
    """Every key with its type and a dump of its value, to prove nothing was written."""
    client = store.redis
    return {key: (client.type(key), client.dump(key)) for key in client.scan_iter(count=1000)}


def test_put_creates_then_updates(client: FlaskClient, editor: dict[str, str]) -> None:
    first = client.put(URL, json=ARTICLE, headers=editor)
    assert first.status_code == 201
    body = first.get_json()
    assert body["id"] == "korea-china-reset"
    assert body["title"] == ARTICLE["title"]
    assert body["section"] == "Diplomacy"
    assert body["tags"] == ["China", "South Korea"]
    assert body["published_at"].startswith("2026-01-08T09:00:00")

    second = client.put(URL, json={**ARTICLE, "title": "New title", "section": "Asia"},
                        headers=editor)
    assert second.status_code == 200
    assert second.get_json()["title"] == "New title"
    assert second.get_json()["created_at"] == body["created_at"]

    got = client.get(URL)
    assert got.status_code == 200
    article = got.get_json()
    assert article["title"] == "New title"
    assert article["section"] == "Asia"
    assert article["reactions"] == {"counts": {"yes": 0, "no": 0}, "total": 0}


def test_section_move_updates_indexes(
    client: FlaskClient, editor: dict[str, str], store: Any
) -> None:
    client.put(URL, json=ARTICLE, headers=editor)
    client.put(URL, json={**ARTICLE, "section": "Asia"}, headers=editor)
    keys = store.keys
    assert store.redis.zscore(keys.section("Asia"), "korea-china-reset") is not None
    assert store.redis.zscore(keys.section("Diplomacy"), "korea-china-reset") is None
    assert store.redis.zrange(keys.articles, 0, -1) == ["korea-china-reset"]


def test_article_events_logged(client: FlaskClient, editor: dict[str, str], store: Any) -> None:
    client.put(URL, json=ARTICLE, headers=editor)
    client.put(URL, json=ARTICLE, headers=editor)
    events = store.redis.xrange(store.keys.article_events("korea-china-reset"))
    assert [fields["type"] for _, fields in events] == ["article.created", "article.updated"]


def test_get_counts_follow_votes(
    client: FlaskClient, article: str, reader: dict[str, str]
) -> None:
    client.put(f"{URL}/reactions/mine", json={"choice": "no"}, headers=reader)
    assert client.get(URL).get_json()["reactions"] == {"counts": {"yes": 0, "no": 1}, "total": 1}


def test_unknown_article_is_404(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/articles/nope"), 404, "unknown_article")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/articles/-starts-with-dash",
        "/api/v1/articles/" + "a" * 129,
        "/api/v1/articles/has%20space",
        "/api/v1/articles/%C3%A9t%C3%A9",
        "/api/v1/articles/a%2Fb",
    ],
)
def test_odd_ids_are_404(client: FlaskClient, editor: dict[str, str], path: str,
                         store: Any) -> None:
    before = redis_snapshot(store)
    assert_error(client.get(path), 404)
    assert_error(client.put(path, json=ARTICLE, headers=editor), 404)
    assert redis_snapshot(store) == before


def test_longest_id_is_accepted(client: FlaskClient, editor: dict[str, str]) -> None:
    article_id = "A1._:-" + "z" * 122
    assert len(article_id) == 128
    assert client.put(f"/api/v1/articles/{article_id}", json=ARTICLE,
                      headers=editor).status_code == 201


def test_put_needs_a_token(client: FlaskClient, store: Any) -> None:
    before = redis_snapshot(store)
    assert_error(client.put(URL, json=ARTICLE), 401, "unauthorized")
    for header in ("Bearer eng_nope.nope", "Bearer ", "Basic abc", "Bearer garbage",
                   "Bearer eng_" + "x" * 300):
        assert_error(client.put(URL, json=ARTICLE, headers={"Authorization": header}), 401)
    assert redis_snapshot(store) == before


def test_credentials_are_checked_before_the_body(client: FlaskClient,
                                                  editor: dict[str, str]) -> None:
    """Strangers learn nothing about the schema: 401 comes before 400/415/422."""
    assert_error(client.put(URL, json={}), 401)
    assert_error(client.put(URL, data="{", content_type="application/json"), 401)
    assert_error(client.put(URL, json={}, headers=editor), 422)


def test_revoked_token_is_401(client: FlaskClient, store: Any) -> None:
    value, record = tokens.create(store, "editor", "short-lived")
    headers = {"Authorization": f"Bearer {value}"}
    assert client.put(URL, json=ARTICLE, headers=headers).status_code == 201
    assert tokens.revoke(store, record["id"])
    assert_error(client.put(URL, json=ARTICLE, headers=headers), 401, "unauthorized")


def test_token_with_wrong_secret_is_401(client: FlaskClient, editor_token: str) -> None:
    token_id = editor_token.split(".")[0]
    forged = {"Authorization": f"Bearer {token_id}.not-the-secret"}
    assert_error(client.put(URL, json=ARTICLE, headers=forged), 401, "unauthorized")


def test_admin_may_do_editor_things(client: FlaskClient, admin: dict[str, str]) -> None:
    assert client.put(URL, json=ARTICLE, headers=admin).status_code == 201


def test_role_checks(app: Flask, store: Any) -> None:
    """require_role: editors get 403 on admin routes, admins pass, no token is 401."""
    test_bp = Blueprint("role_probe", __name__)

    @test_bp.get("/_probe/admin")
    @require_role("admin")
    def admin_only() -> dict[str, str]:
        return {"ok": "admin"}

    @test_bp.get("/_probe/editor")
    @require_role("editor")
    def editor_only() -> dict[str, str]:
        return {"ok": "editor"}

    app.register_blueprint(test_bp)
    client = app.test_client()
    editor = {"Authorization": "Bearer " + tokens.create(store, "editor")[0]}
    admin = {"Authorization": "Bearer " + tokens.create(store, "admin")[0]}
    assert_error(client.get("/_probe/admin", headers=editor), 403, "forbidden")
    assert client.get("/_probe/admin", headers=admin).get_json() == {"ok": "admin"}
    assert client.get("/_probe/editor", headers=editor).get_json() == {"ok": "editor"}
    assert client.get("/_probe/editor", headers=admin).get_json() == {"ok": "editor"}
    assert_error(client.get("/_probe/admin"), 401, "unauthorized")


def staff_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, sample url, role) of every API route that declares a role."""
    out = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            handler = getattr(view_class, method.lower(), None) if view_class else view
            role = getattr(handler, "required_role", None)
            if role:
                url = rule.rule
                for name in rule.arguments:
                    url = url.replace(f"<eid:{name}>", "x1").replace(f"<{name}>", "x1")
                out.append((method, url, role))
    return out


def test_every_staff_route_checks_its_role(app: Flask, client: FlaskClient,
                                           store: Any) -> None:
    routes = staff_routes(app)
    assert ("PUT", "/api/v1/articles/x1", "editor") in routes
    editor = {"Authorization": "Bearer " + tokens.create(store, "editor")[0]}
    admin = {"Authorization": "Bearer " + tokens.create(store, "admin")[0]}
    for method, url, role in routes:
        kwargs: dict[str, Any] = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
        # Streamed responses (exports) must be closed, or their request context lingers.
        with client.open(url, method=method, **kwargs) as anonymous:
            assert_error(anonymous, 401)
        with client.open(url, method=method, headers=editor, **kwargs) as as_editor:
            if role == "admin":
                assert_error(as_editor, 403, "forbidden")
            else:
                assert as_editor.status_code not in (401, 403), (method, url)
        with client.open(url, method=method, headers=admin, **kwargs) as as_admin:
            assert as_admin.status_code not in (401, 403), (method, url)


def test_malformed_json_is_400(client: FlaskClient, editor: dict[str, str], store: Any) -> None:
    before = redis_snapshot(store)
    response = client.put(URL, data='{"title": ', headers=editor,
                          content_type="application/json")
    error = assert_error(response, 400)
    assert error["code"] == "malformed_json"
    assert redis_snapshot(store) == before


def test_not_json_is_415(client: FlaskClient, editor: dict[str, str], store: Any) -> None:
    before = redis_snapshot(store)
    response = client.put(URL, data="title=x", headers=editor,
                          content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")
    assert redis_snapshot(store) == before


def test_body_too_large_is_413(client: FlaskClient, editor: dict[str, str], app: Flask) -> None:
    big = {**ARTICLE, "title": "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)}
    assert_error(client.put(URL, json=big, headers=editor), 413, "payload_too_large")


def test_method_not_allowed_is_405(client: FlaskClient) -> None:
    error = assert_error(client.post(URL, json={}), 405, "method_not_allowed")
    assert error["message"]
    assert_error(client.delete(URL), 405)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"title": ""}, "title"),
        ({"published_at": "yesterday"}, "published_at"),
        ({"tags": "not-a-list"}, "tags"),
        ({"tags": ["t"] * 21}, "tags"),
        ({"section": None}, "section"),
    ],
)
def test_validation_is_422(
    client: FlaskClient, editor: dict[str, str], store: Any, change: dict[str, Any], field: str
) -> None:
    before = redis_snapshot(store)
    error = assert_error(client.put(URL, json={**ARTICLE, **change}, headers=editor), 422,
                         "validation_failed")
    assert field in error["fields"]
    assert redis_snapshot(store) == before


def test_missing_fields_are_422(client: FlaskClient, editor: dict[str, str]) -> None:
    error = assert_error(client.put(URL, json={}, headers=editor), 422)
    assert {"title", "url", "section", "published_at"} <= set(error["fields"])
    error = assert_error(client.put(URL, headers=editor), 422)
    assert "title" in error["fields"]


def test_naive_time_is_utc(client: FlaskClient, editor: dict[str, str]) -> None:
    response = client.put(URL, json={**ARTICLE, "published_at": "2026-01-08T09:00:00"},
                          headers=editor)
    assert response.status_code == 201
    assert response.get_json()["published_at"] == "2026-01-08T09:00:00+00:00"


def test_offset_time_is_stored_as_utc(client: FlaskClient, editor: dict[str, str]) -> None:
    response = client.put(URL, json={**ARTICLE, "published_at": "2026-01-08T18:00:00+09:00"},
                          headers=editor)
    assert response.get_json()["published_at"] == "2026-01-08T09:00:00+00:00"
    assert client.get(URL).get_json()["published_at"] == "2026-01-08T09:00:00+00:00"


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(client.get("/no/such/page"), 404)
