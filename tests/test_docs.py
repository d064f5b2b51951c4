"""The OpenAPI document is valid OpenAPI 3, documents the error shape, and /api/docs shows it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from openapi_spec_validator import validate

METHODS = {"get", "put", "post", "patch", "delete"}
ROOT = Path(__file__).resolve().parent.parent


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


def test_docs_page_is_swagger_ui_from_local_files(client: FlaskClient) -> None:
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    # Nothing inline and nothing fetched from elsewhere: the page runs under script-src 'self'.
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert not re.search(r"\son[a-z]+=", page)
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    sources = re.findall(r"""(?:src|href)=["'](/[^"']*)""", page)
    assert "/api/v1/openapi.json" in page
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
    bundle = client.get("/api/docs/swagger-ui/swagger-ui-bundle.js")
    assert bundle.mimetype == "text/javascript" and b"SwaggerUIBundle" in bundle.get_data()
    assert client.get("/api/docs/swagger-ui/index.html").status_code == 404


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): operation for path, ops in spec["paths"].items()
            for method, operation in ops.items() if method in METHODS}


def test_every_operation_has_a_short_camel_case_id(client: FlaskClient) -> None:
    found = operations(spec_of(client))
    ids = [operation.get("operationId", "") for operation in found.values()]
    assert all(re.fullmatch(r"[a-z]+([A-Z][a-z]+)*", i) and len(i) <= 24 for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert found["put", "/api/v1/articles/{article_id}/reactions/mine"]["operationId"] == \
        "putMyReaction"
    assert found["get", "/api/v1/reactions"]["operationId"] == "getReactionsBatch"
    alert_rules = {"listAlertRules", "createAlertRule", "updateAlertRule", "deleteAlertRule"}
    assert alert_rules <= set(ids)
    api_doc = (ROOT / "docs" / "api.md").read_text()
    assert all(f"`{i}`" in api_doc for i in alert_rules)


def header(operation: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in operation.get("parameters", [])
                 if p["in"] == "header" and p["name"] == name), None)


def test_tokens_are_declared_where_they_are_needed_or_optional(client: FlaskClient) -> None:
    spec = spec_of(client)
    schemes = spec["components"]["securitySchemes"]
    assert (schemes["adminToken"]["type"], schemes["adminToken"]["scheme"]) == ("http", "bearer")
    assert schemes["readerToken"]["name"] == "X-Engage-Reader"
    found = operations(spec)
    for key in [("get", "/api/v1/articles/{article_id}/reactions"),
                ("get", "/api/v1/polls/{poll_id}")]:
        assert found[key]["security"][:2] == [{}, {"readerToken": []}], key
        optional = header(found[key], "X-Engage-Reader")
        assert optional is not None and optional["required"] is False, key
    required = header(found["put", "/api/v1/polls/{poll_id}/votes/mine"], "X-Engage-Reader")
    assert required is not None and required["required"] is True
    for (method, path), operation in found.items():
        names = {name for requirement in operation.get("security", []) for name in requirement}
        assert "Token:" in operation["description"], (method, path)
        if names & {"editorToken", "adminToken"} and {} not in operation["security"]:
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    for method, path in [("delete", "/api/v1/polls/{poll_id}"), ("post", "/api/v1/webhooks"),
                         ("get", "/api/v1/webhooks"), ("delete", "/api/v1/webhooks/{webhook_id}")]:
        assert found[method, path]["security"] == [{"adminToken": []}], (method, path)
        assert "editor token gets 403" in found[method, path]["description"]
    assert found["put", "/api/v1/articles/{article_id}"]["security"] == [
        {"editorToken": []}, {"adminToken": []}]


def test_conditional_reads_and_export_media_types_are_documented(client: FlaskClient) -> None:
    found = operations(spec_of(client))
    conditional = [key for key, operation in found.items() if "304" in operation["responses"]]
    assert ("get", "/api/v1/articles/{article_id}/reactions") in conditional
    assert ("get", "/api/v1/reactions") in conditional
    for key in conditional:
        assert header(found[key], "If-None-Match"), key
        assert "ETag" in found[key]["responses"]["200"]["headers"], key
    export = found["get", "/api/v1/events/export"]["responses"]["200"]["content"]
    assert set(export) == {"text/csv", "application/x-ndjson"}
    poll_export = found["get", "/api/v1/polls/{poll_id}/export.csv"]["responses"]["200"]
    assert set(poll_export["content"]) == {"text/csv"}


def test_staff_answers_match_the_documented_roles(
    client: FlaskClient, editor: dict[str, str], article: str
) -> None:
    made = client.post("/api/v1/polls", json={"question": "Q?", "options": ["a", "b"]},
                       headers=editor)
    assert made.status_code == 201
    refused = client.delete(f"/api/v1/polls/{made.json['id']}", headers=editor)
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "forbidden"
