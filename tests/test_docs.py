"""The OpenAPI document is valid OpenAPI 3, documents the error shape, and /api/docs shows it."""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient
from openapi_spec_validator import validate

METHODS = {"get", "put", "post", "patch", "delete"}


def spec_of(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    spec: dict[str, Any] = response.get_json()
    return spec


def test_openapi_is_valid(client: FlaskClient) -> None:
    spec = spec_of(client)
    assert spec["openapi"].startswith("3.")
    validate(spec)  # raises on an invalid document


def test_foundation_paths_are_in_the_document(client: FlaskClient) -> None:
    paths = spec_of(client)["paths"]
    expected = {
        "/api/v1/readers": {"post"},
        "/api/v1/articles/{article_id}": {"get", "put"},
        "/api/v1/articles/{article_id}/reactions": {"get"},
        "/api/v1/articles/{article_id}/reactions/mine": {"put", "delete"},
        "/api/v1/reactions": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    vote = paths["/api/v1/articles/{article_id}/reactions/mine"]["put"]
    assert {"200", "401", "404", "422", "429"} <= set(vote["responses"])
    assert vote["security"] == [{"readerToken": []}]
    assert set(paths["/api/v1/articles/{article_id}"]["put"]["responses"]) >= {"200", "201"}
    param = next(p for p in paths["/api/v1/articles/{article_id}"]["parameters"]
                 if p["name"] == "article_id")
    assert param["schema"]["pattern"].startswith("^[A-Za-z0-9]")


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, name = node["$ref"].split("/")[-2:]
        node = spec["components"][section][name]
    return node


def test_error_schema_is_in_the_document(client: FlaskClient) -> None:
    spec = spec_of(client)
    schemas = spec["components"]["schemas"]
    error = schemas["Error"]
    assert error["required"] == ["error"]
    body = resolve(spec, error["properties"]["error"])
    assert set(body["properties"]) == {"code", "message", "fields"}
    assert set(body["required"]) == {"code", "message"}
    assert body["properties"]["fields"]["additionalProperties"]["type"] == "array"
    # Every documented error response of every operation uses that one shape.
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) or status == "default":
                    content = resolve(spec, response).get("content", {})
                    schema = content.get("application/json", {}).get("schema", {})
                    assert schema.get("$ref", "").endswith("/Error"), (path, method, status)


def test_docs_page_lists_every_path(client: FlaskClient) -> None:
    spec = spec_of(client)
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = html.unescape(response.get_data(as_text=True))
    for path, operations in spec["paths"].items():
        assert path in page, path
        for method in set(operations) & METHODS:
            assert re.search(rf">{method}</span>\s*<code>{re.escape(path)}</code>", page), (
                method, path)
    # Served from the package: no script and nothing fetched from elsewhere.
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "default-src" in response.headers.get("Content-Security-Policy", "") or \
        "script-src" in response.headers.get("Content-Security-Policy", "")
