"""No stored text takes a control character (C0, DEL, C1), through the API or the
dashboard's forms: a clear 422 names the field, and nothing is stored.

A NUL in an article's section used to be stored and written raw into dashboard HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage.store import tokens
from tests.conftest import ARTICLE
from tests.desk import Desk, field_error

CONTROLS = ["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9f"]
MESSAGE = "Must not contain control characters."


def with_control(text: str, char: str) -> str:
    return text[:3] + char + text[3:]


def refused(response: Any, field: str, message: str = MESSAGE) -> None:
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "validation_failed"
    assert any(message in m for m in error["fields"][field]), error


# -- through the API ----------------------------------------------------------------------
@pytest.mark.parametrize("char", CONTROLS)
@pytest.mark.parametrize("field, value", [
    ("title", ARTICLE["title"]), ("section", ARTICLE["section"]),
    ("url", ARTICLE["url"]), ("tags", ["China", "Korea"]),
])
def test_an_article_with_a_control_character_is_refused(
    client: FlaskClient, editor: dict[str, str], article: str,
    field: str, value: Any, char: str,
) -> None:
    before = client.get(f"/api/v1/articles/{article}").json
    bad = [value[0], with_control(value[1], char)] if isinstance(value, list) else \
        with_control(value, char)
    for target in (article, "another-article"):
        response = client.put(f"/api/v1/articles/{target}", headers=editor,
                              json={**ARTICLE, field: bad})
        refused(response, field)
    assert client.get(f"/api/v1/articles/{article}").json == before
    assert client.get("/api/v1/articles/another-article").status_code == 404


@pytest.mark.parametrize("char", ["\x00", "\n", "\x7f", "\x85"])
def test_polls_links_and_webhooks_refuse_control_characters(
    client: FlaskClient, editor: dict[str, str], admin: dict[str, str], article: str,
    char: str,
) -> None:
    poll = {"question": "Which bridge first?", "options": ["North", "South"]}
    refused(client.post("/api/v1/polls", headers=editor,
                        json={**poll, "question": with_control(poll["question"], char)}),
            "question")
    refused(client.post("/api/v1/polls", headers=editor,
                        json={**poll, "options": ["North", with_control("South", char)]}),
            "options")
    created = client.post("/api/v1/polls", headers=editor, json=poll).json
    refused(client.patch(f"/api/v1/polls/{created['id']}", headers=editor,
                         json={"question": with_control("Changed?", char)}), "question")
    assert client.get(f"/api/v1/polls/{created['id']}").json["question"] == poll["question"]
    assert len(client.get("/api/v1/polls", headers=editor).json["polls"]) == 1

    link = {"title": "Seoul's view", "url": "https://news.example.com/seoul"}
    for field in ("title", "url"):
        response = client.put(f"/api/v1/articles/{article}/links", headers=editor,
                              json=[{**link, field: with_control(link[field], char)}])
        assert response.status_code == 422
        assert f"Item 1: {MESSAGE}" in response.json["error"]["fields"][field]
    assert client.get(f"/api/v1/articles/{article}/links").json["links"] == []

    hook = {"url": "https://93.184.215.14/hook", "events": ["*"], "secret": "s" * 24}
    refused(client.post("/api/v1/webhooks", headers=admin,
                        json={**hook, "secret": with_control(hook["secret"], char)}), "secret")
    refused(client.post("/api/v1/webhooks", headers=admin,
                        json={**hook, "url": with_control(hook["url"], char)}), "url")
    assert client.get("/api/v1/webhooks", headers=admin).json["webhooks"] == []


def test_a_section_query_with_a_control_character_is_refused(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    refused(client.get("/api/v1/stats/articles?section=Diplo%00macy", headers=editor),
            "section")


def test_text_without_control_characters_is_kept_as_sent(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    """Only C0, DEL and C1: other scripts, symbols and separators stay."""
    title = "Séoul–北京 \u2028 \u00a0 ☃ 🎉 \u200b"
    response = client.put("/api/v1/articles/kept", headers=editor,
                          json={**ARTICLE, "title": title, "section": "Économie"})
    assert response.status_code == 201, response.json
    assert response.json["title"] == title and response.json["section"] == "Économie"


# -- through the forms --------------------------------------------------------------------
ARTICLE_FORM = {"id": "harbour-expansion", "title": "The harbour doubles its quays",
                "url": "https://news.example.com/harbour", "section": "Business",
                "published_at": "2026-03-01T09:30", "tz": "UTC", "tags": "harbour, trade"}


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85"])
@pytest.mark.parametrize("field", ["title", "section", "url", "tags"])
def test_the_article_forms_refuse_control_characters(
    desk: Desk, client: FlaskClient, article: str, field: str, char: str
) -> None:
    before = client.get(f"/api/v1/articles/{article}").json
    bad = {**ARTICLE_FORM, field: with_control(ARTICLE_FORM[field], char)}
    for path in ("/dashboard/articles/new", f"/dashboard/articles/{article}/edit"):
        response = desk.post(path, bad)
        assert response.status_code == 422, path
        assert MESSAGE in field_error(response.get_data(as_text=True), field), path
    assert client.get("/api/v1/articles/harbour-expansion").status_code == 404
    assert client.get(f"/api/v1/articles/{article}").json == before


def test_a_nul_in_a_section_never_reaches_the_dashboard(
    desk: Desk, client: FlaskClient, store: Any, catch_up: Callable[[], int]
) -> None:
    response = desk.post("/dashboard/articles/new",
                         {**ARTICLE_FORM, "section": "Busi\x00ness"})
    assert response.status_code == 422
    assert "\x00" not in response.get_data(as_text=True)  # the field shows it as U+FFFD
    catch_up()
    assert "Busi" not in desk.get("/dashboard").get_data(as_text=True)
    assert client.get("/api/v1/articles/harbour-expansion").status_code == 404


@pytest.mark.parametrize("char", ["\x00", "\x7f", "\x85"])
def test_poll_and_link_forms_refuse_control_characters(
    desk: Desk, client: FlaskClient, editor: dict[str, str], article: str, char: str
) -> None:
    poll = {"question": "Night market?", "option": ["Yes", "No"], "kind": "single",
            "results": "always", "action": "publish"}
    for change, field in (({"question": with_control("Night market?", char)}, "question"),
                          ({"option": ["Yes", with_control("No way", char)]}, "options")):
        response = desk.post("/dashboard/polls/new", {**poll, **change})
        assert response.status_code == 422
        assert MESSAGE in field_error(response.get_data(as_text=True), field)
    assert client.get("/api/v1/polls", headers=editor).json["polls"] == []

    response = desk.post(f"/dashboard/articles/{article}/links",
                         [("title", with_control("Seoul's view", char)),
                          ("url", "https://news.example.com/seoul"), ("action", "save")])
    assert response.status_code == 422
    assert MESSAGE in field_error(response.get_data(as_text=True), "title-0")
    assert client.get(f"/api/v1/articles/{article}/links").json["links"] == []


@pytest.mark.parametrize("char", ["\x00", "\n", "\x85"])
def test_admin_forms_refuse_control_characters(
    admin_desk: Desk, client: FlaskClient, admin: dict[str, str], store: Any, char: str
) -> None:
    before = tokens.list_all(store)
    response = admin_desk.post("/dashboard/admin/tokens",
                               {"role": "editor", "name": with_control("CMS feed", char)})
    assert response.status_code == 422
    assert MESSAGE in field_error(response.get_data(as_text=True), "name")
    assert tokens.list_all(store) == before

    response = admin_desk.post("/dashboard/admin/webhooks", {
        "url": "https://93.184.215.14/hook", "events": ["*"],
        "secret": with_control("s" * 24, char)})
    assert response.status_code == 422
    assert MESSAGE in field_error(response.get_data(as_text=True), "secret")
    assert client.get("/api/v1/webhooks", headers=admin).json["webhooks"] == []
