"""Every JSON answer of the API is what its OpenAPI document declares.

The document names a schema per operation and status (`@blp.response`,
`@blp.alt_response`); flask-smorest dumps a view's data through it. This walks a session
through every operation and checks each JSON body against the schema the document
names for its status: the schema finds nothing to refuse, and loading then dumping the
body gives it back unchanged, so no view hands out a shape of its own.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from engage import schemas
from tests.conftest import ARTICLE, new_reader
from tests.test_alerts import RULE
from tests.test_polls import POLL

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"WEBHOOK_ALLOW_PRIVATE": True}


def _schema(spec: dict[str, Any], path: str, method: str, status: int) -> Any:
    answer = spec["paths"][path][method]["responses"][str(status)]
    if "$ref" in answer:  # flask-smorest's shared answers (422, default errors)
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    # apispec names a component after its schema class, less the "Schema" suffix.
    return getattr(schemas, ref.rsplit("/", 1)[1] + "Schema")()


def test_every_json_answer_matches_its_declared_schema(
    client: FlaskClient, editor: dict[str, str], admin: dict[str, str], article: str
) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    reader = new_reader(client)
    # Renewal and erasure refuse the token they were sent: each has its own reader.
    staff = {"editor": editor, "admin": admin, "reader": reader, None: {},
             "renewing": new_reader(client), "erasing": new_reader(client)}
    link = {"title": "Background", "url": "https://news.example.com/background"}
    a = f"/articles/{article}"
    # (method, document path, path, who, body); later steps use what earlier ones made.
    steps: list[tuple[str, str, str, str | None, Any]] = [
        ("post", "/readers", "/readers", None, None),
        ("get", "/articles/{article_id}", a, None, None),
        ("get", "/articles/{article_id}", "/articles/nope", None, None),
        ("put", "/articles/{article_id}", a, "editor", ARTICLE),
        ("put", "/articles/{article_id}", a, "editor", {**ARTICLE, "url": "ftp://x"}),
        ("put", "/articles/{article_id}", a, "reader", ARTICLE),
        ("get", "/articles/{article_id}/reactions", a + "/reactions", None, None),
        ("put", "/articles/{article_id}/reactions/mine", a + "/reactions/mine", "reader",
         {"choice": "no", "reason": "biased"}),
        ("get", "/articles/{article_id}/reactions", a + "/reactions", "reader", None),
        ("delete", "/articles/{article_id}/reactions/mine", a + "/reactions/mine", "reader",
         None),
        ("put", "/articles/{article_id}/reactions/mine", a + "/reactions/mine", None,
         {"choice": "yes"}),
        ("get", "/reactions", f"/reactions?article={article}&article=nope", None, None),
        ("get", "/articles/{article_id}/email-links", a + "/email-links?days=3", "editor", None),
        ("get", "/articles/{article_id}/email-links", "/articles/nope/email-links", "editor",
         None),
        ("put", "/articles/{article_id}/links", a + "/links", "editor", [link]),
        ("put", "/articles/{article_id}/links", a + "/links", "editor", [{"url": "x"}]),
        ("get", "/articles/{article_id}/links", a + "/links", None, None),
        ("post", "/articles/{article_id}/links/impressions", a + "/links/impressions", None,
         {"links": ["nope"]}),
        ("post", "/articles/{article_id}/links/impressions", "/articles/nope/links/impressions",
         None, {"links": ["nope"]}),
        ("get", "/widget", f"/widget?article={article}", None, None),
        ("get", "/widget/mine", f"/widget/mine?article={article}", "reader", None),
        ("get", "/stats/articles", "/stats/articles", "editor", None),
        ("get", "/stats/sections", "/stats/sections", "editor", None),
        ("get", "/articles/{article_id}/stats", a + "/stats", "editor", None),
        ("post", "/polls", "/polls", "editor", {**POLL, "id": "ties", "article": article}),
        ("get", "/polls", "/polls", "editor", None),
        ("get", "/polls/{poll_id}", "/polls/ties", None, None),
        ("get", "/polls/{poll_id}", "/polls/ties", "editor", None),
        ("patch", "/polls/{poll_id}", "/polls/ties", "editor", {"question": "Still?"}),
        ("get", "/articles/{article_id}/polls", a + "/polls", None, None),
        ("post", "/webhooks", "/webhooks", "admin",
         {"url": "https://hooks.engage.test/engage", "events": ["*"],
          "secret": "a-webhook-secret-of-some-length"}),
        ("get", "/webhooks", "/webhooks", "admin", None),
        ("get", "/webhooks", "/webhooks", "editor", None),
        ("post", "/sites", "/sites", "admin", {"name": "regional", "locale": "fr"}),
        ("post", "/sites", "/sites", "admin", {"name": "regional"}),
        ("get", "/sites", "/sites", "admin", None),
        ("get", "/sites/{name}", "/sites/regional", "admin", None),
        ("patch", "/sites/{name}", "/sites/regional", "admin", {"links_shown": 2}),
        ("patch", "/sites/{name}", "/sites/nope", "admin", {"links_shown": 2}),
        ("post", "/alert-rules", "/alert-rules", "editor", RULE),
        ("get", "/alert-rules", "/alert-rules", "editor", None),
        ("put", "/alert-rules/{rule_id}", "/alert-rules/nope", "editor", RULE),
        ("get", "/webhooks/dead-letters", "/webhooks/dead-letters", "admin", None),
        ("get", "/audit-log", "/audit-log", "admin", None),
        ("post", "/webhooks/{webhook_id}/test", "/webhooks/wh_nope/test", "admin", None),
        ("get", "/readers/me/data", "/readers/me/data", "reader", None),
        ("get", "/readers/me/data", "/readers/me/data", None, None),
        ("post", "/readers/renew", "/readers/renew", "renewing", None),
        ("delete", "/readers/me/data", "/readers/me/data", "erasing", None),
    ]
    option = None
    checked: set[tuple[str, str, int]] = set()
    for method, doc_path, path, who, body in steps:
        response = client.open("/api/v1" + path, method=method.upper(), json=body,
                               headers=staff[who])
        if doc_path == "/polls/{poll_id}" and option is None:
            option = response.get_json()["options"][0]["id"]
            steps.append(("put", "/polls/{poll_id}/votes/mine", "/polls/ties/votes/mine",
                          "reader", {"options": [option]}))
            steps.append(("delete", "/polls/{poll_id}/votes/mine", "/polls/ties/votes/mine",
                          "reader", None))
        if (method, doc_path) == ("post", "/webhooks"):
            steps.append(("post", "/webhooks/{webhook_id}/test",
                          f"/webhooks/{response.get_json()['id']}/test", "admin", None))
        answer = response.get_json()
        schema = _schema(spec, "/api/v1" + doc_path, method, response.status_code)
        with client.application.app_context():  # some schemas check against the settings
            assert schema.validate(answer) == {}, (method, path, response.status_code, answer)
            assert schema.dump(schema.load(answer)) == answer, (method, path, answer)
        checked.add((method, doc_path, response.status_code))

    # Every operation that answers JSON on success was walked through, errors too.
    documented = {
        (method, path.removeprefix("/api/v1"))
        for path, operations in spec["paths"].items()
        for method, operation in operations.items() if method != "parameters"
        if any(status.startswith("2") and "application/json" in answer.get("content", {})
               for status, answer in operation["responses"].items())
    }
    assert documented == {(method, path) for method, path, _ in checked}
    assert {status for _, _, status in checked} >= {200, 201, 401, 403, 404, 422}
