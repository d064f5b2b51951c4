"""The editors' and admins' forms over HTTP: each form writes what the API would, refuses
what the API refuses with the schema's message next to the field, and stores nothing then
(checked through the API)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage import schemas
from engage.store import tokens
from tests.desk import Desk, field_error


def api_polls(client: FlaskClient, editor: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/api/v1/polls", headers=editor)
    assert response.status_code == 200
    return list(response.json["polls"])


POLL = {
    "question": "Should the city open a night market?",
    "option": ["Yes", "No", "Only on weekends", "", ""],
    "kind": "single",
    "results": "always",
}


# -- polls ------------------------------------------------------------------------------
def test_new_poll_form_creates_the_poll_the_api_shows(
    desk: Desk, client: FlaskClient, editor: dict[str, str], article: str
) -> None:
    page = desk.get(f"/dashboard/polls/new?article={article}").get_data(as_text=True)
    assert f'value="{article}"' in page and f'<option value="{article}">' in page
    closes_local = (datetime.now(UTC) + timedelta(days=3)).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Seoul")).replace(second=0, microsecond=0)
    response = desk.post("/dashboard/polls/new", {
        **POLL, "kind": "multiple", "max_choices": "2", "article": article, "min_votes": "5",
        "results": "after_vote", "closes_at": closes_local.strftime("%Y-%m-%dT%H:%M"),
        "tz": "Asia/Seoul", "action": "publish",
    })
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/polls")
    [poll] = api_polls(client, editor)
    assert poll["question"] == POLL["question"]
    assert [o["label"] for o in poll["options"]] == ["Yes", "No", "Only on weekends"]
    assert poll["article"] == article and poll["multiple"] and poll["max_choices"] == 2
    assert poll["results_visibility"] == "after_vote" and poll["min_votes"] == 5
    stored = datetime.fromisoformat(poll["closes_at"])
    assert stored == closes_local  # Seoul wall time, stored as the same instant in UTC
    assert stored.utcoffset() == timedelta(0)


@pytest.mark.parametrize("tz", ["", "UTC", "Not/A_Zone"])
def test_a_close_time_without_a_known_zone_is_read_as_utc(
    desk: Desk, client: FlaskClient, editor: dict[str, str], tz: str
) -> None:
    """What a browser without scripts sends: the form says the time is read as UTC."""
    page = desk.post("/dashboard/polls/new", {**POLL, "closes_at": "2099-01-01T10:00",
                                              "tz": tz, "action": "preview"})
    assert "In UTC: 2099-01-01 10:00 UTC." in page.get_data(as_text=True)
    assert desk.post("/dashboard/polls/new", {**POLL, "closes_at": "2099-01-01T10:00",
                                              "tz": tz}).status_code == 302
    [poll] = api_polls(client, editor)
    assert poll["closes_at"].startswith("2099-01-01T10:00:00")


def test_preview_shows_the_widget_view_and_stores_nothing(
    desk: Desk, client: FlaskClient, editor: dict[str, str]
) -> None:
    page = desk.post("/dashboard/polls/new", {**POLL, "action": "preview"})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Preview: the poll in the widget" in text
    assert text.count('class="wp-pill"') == 3 and "0 votes" in text
    assert api_polls(client, editor) == []


@pytest.mark.parametrize("change, field, message", [
    ({"question": "   "}, "question", "Must not be blank."),
    ({"option": ["Only one", "", ""]}, "options", "Length must be between 2 and 10."),
    ({"option": ["Yes", "yes"]}, "options", "Option labels must be distinct."),
    ({"kind": "multiple", "max_choices": "4"}, "max_choices",
     "Cannot exceed the number of options."),
    ({"kind": "multiple", "max_choices": "two"}, "max_choices", "Not a valid integer."),
    ({"closes_at": "2020-01-01T10:00", "tz": "UTC"}, "closes_at", "Must be in the future."),
    ({"results": "never"}, "results", "Must be one of"),
    ({"min_votes": "-1"}, "min_votes", "greater than or equal to 0"),
    ({"article": "no-such-article"}, "article", "No article is registered"),
    ({"article": "bad id!"}, "article", "Ids are 1-128 characters"),
])
def test_invalid_poll_shows_the_message_at_its_field_and_stores_nothing(
    desk: Desk, client: FlaskClient, editor: dict[str, str],
    change: dict[str, Any], field: str, message: str,
) -> None:
    for action in ("publish", "preview"):
        response = desk.post("/dashboard/polls/new", {**POLL, **change, "action": action})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert message in field_error(page, field), page
        assert 'role="alert"' in page and "Nothing was saved" in page
        assert "Preview: the poll" not in page
    assert api_polls(client, editor) == []


def test_the_form_and_the_api_refuse_with_the_same_words(
    desk: Desk, client: FlaskClient, editor: dict[str, str]
) -> None:
    api = client.post("/api/v1/polls", headers=editor,
                      json={"question": "Q?", "options": ["A", "a"]})
    assert api.status_code == 422
    form = desk.post("/dashboard/polls/new", {**POLL, "option": ["A", "a"]})
    assert api.json["error"]["fields"]["options"] == [
        field_error(form.get_data(as_text=True), "options")]


def _one_poll(client: FlaskClient, editor: dict[str, str], **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/polls", headers=editor,
                           json={"question": "Which bridge first?", "options": ["A", "B"],
                                 **extra})
    assert response.status_code == 201
    return dict(response.json)


def test_edit_poll_changes_what_the_api_shows(
    desk: Desk, client: FlaskClient, editor: dict[str, str]
) -> None:
    poll = _one_poll(client, editor, closes_at="2099-01-01T12:00:00Z")
    page = desk.get(f"/dashboard/polls/{poll['id']}/edit").get_data(as_text=True)
    assert 'value="2099-01-01T12:00"' in page and 'name="tz" value="UTC"' in page
    response = desk.post(f"/dashboard/polls/{poll['id']}/edit", {
        "question": "Which bridge should open first?", "results": "after_close",
        "closes_at": "", "tz": "", "min_votes": "3",
    })
    assert response.status_code == 302
    edited = client.get(f"/api/v1/polls/{poll['id']}", headers=editor).json
    assert edited["question"] == "Which bridge should open first?"
    assert edited["results_visibility"] == "after_close"
    assert edited["closes_at"] is None and edited["min_votes"] == 3


@pytest.mark.parametrize("change, field, message", [
    ({"question": ""}, "question", "Length must be between 1 and 300."),
    ({"closes_at": "2001-02-03T04:05"}, "closes_at", "Must be in the future."),
    ({"closes_at": "soon"}, "closes_at", "Not a valid datetime."),
    ({"min_votes": "1.5"}, "min_votes", "Not a valid integer."),
])
def test_invalid_poll_edit_stores_nothing(
    desk: Desk, client: FlaskClient, editor: dict[str, str],
    change: dict[str, Any], field: str, message: str,
) -> None:
    poll = _one_poll(client, editor)
    form = {"question": "Changed?", "results": "always", "closes_at": "", "tz": "",
            "min_votes": "", **change}
    response = desk.post(f"/dashboard/polls/{poll['id']}/edit", form)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    after = client.get(f"/api/v1/polls/{poll['id']}", headers=editor).json
    assert after["question"] == poll["question"] and after["updated_at"] == poll["updated_at"]


def test_a_closed_poll_is_not_edited(
    desk: Desk, client: FlaskClient, editor: dict[str, str]
) -> None:
    poll = _one_poll(client, editor)
    assert client.patch(f"/api/v1/polls/{poll['id']}", headers=editor,
                        json={"status": "closed"}).status_code == 200
    response = desk.post(f"/dashboard/polls/{poll['id']}/edit", {
        "question": "Too late?", "results": "always", "closes_at": "", "min_votes": ""})
    assert response.status_code == 409
    assert "reopen it" in response.get_data(as_text=True)
    assert client.get(f"/api/v1/polls/{poll['id']}", headers=editor).json["question"] == \
        poll["question"]
    assert desk.get("/dashboard/polls/nope/edit").status_code == 404


# -- related links ----------------------------------------------------------------------
def api_links(client: FlaskClient, article: str) -> list[tuple[str, str]]:
    response = client.get(f"/api/v1/articles/{article}/links")
    assert response.status_code == 200
    return [(link["title"], link["url"]) for link in response.json["links"]
            if not link.get("related")]


LINK_A = ("Seoul's view", "https://news.example.com/seoul")
LINK_B = ("Beijing's view", "https://news.example.com/beijing")
LINK_C = ("Tokyo's view", "https://news.example.com/tokyo")


def save_links(desk: Desk, article: str, rows: list[tuple[str, str]]) -> Any:
    data = [("title", t) for t, _ in rows] + [("url", u) for _, u in rows]
    return desk.post(f"/dashboard/articles/{article}/links", [*data, ("action", "save")])


def test_links_are_added_reordered_and_removed(
    desk: Desk, client: FlaskClient, article: str
) -> None:
    # The page's spare row is empty and does not count as a link.
    response = save_links(desk, article, [LINK_A, LINK_B, LINK_C, ("", "")])
    assert response.status_code == 302
    assert api_links(client, article) == [LINK_A, LINK_B, LINK_C]
    order = f"/dashboard/articles/{article}/links/order"
    moved = desk.post(order, {"action": "down:0"})
    assert moved.status_code == 302
    assert api_links(client, article) == [LINK_B, LINK_A, LINK_C]
    # The editor is told the widget may show the old order for a while (public cache).
    told = desk.get(moved.headers["Location"]).get_data(as_text=True)
    assert "Links reordered. Readers may see the previous links for up to 35 seconds" in told
    assert desk.post(order, {"action": "up:2"}).status_code == 302
    assert api_links(client, article) == [LINK_B, LINK_C, LINK_A]
    assert desk.post(order, {"action": "remove:1"}).status_code == 302
    assert api_links(client, article) == [LINK_B, LINK_A]
    edited = ("Beijing's view, a year on", LINK_B[1])
    assert save_links(desk, article, [edited, LINK_A, ("", "")]).status_code == 302
    assert api_links(client, article) == [edited, LINK_A]
    assert save_links(desk, article, [LINK_B, LINK_A]).status_code == 302
    assert desk.post(order, {"action": "remove:7"}).status_code == 422
    assert api_links(client, article) == [LINK_B, LINK_A]
    page = desk.get(f"/dashboard/articles/{article}/links").get_data(as_text=True)
    assert page.count('class="slot-kind">Curated') == 2
    assert page.count("Fill-in") == 2  # LINKS_SHOWN is 4


def test_another_row_saves_nothing(desk: Desk, client: FlaskClient, article: str) -> None:
    response = desk.post(f"/dashboard/articles/{article}/links",
                         [("title", LINK_A[0]), ("url", LINK_A[1]), ("action", "add")])
    assert response.status_code == 200
    assert response.get_data(as_text=True).count('<li class="link-row') == 3
    assert api_links(client, article) == []


@pytest.mark.parametrize("row, field, message", [
    (("Files", "ftp://news.example.com/files"), "url", "Not a valid URL."),
    (("Script", "javascript:alert(1)"), "url", "Not a valid URL."),
    (("", "https://news.example.com/untitled"), "title", "Length must be between 1"),
    (("No address", ""), "url", "Not a valid URL."),
])
def test_an_invalid_link_is_marked_on_its_row_and_nothing_is_stored(
    desk: Desk, client: FlaskClient, article: str,
    row: tuple[str, str], field: str, message: str,
) -> None:
    assert save_links(desk, article, [LINK_A]).status_code == 302
    response = save_links(desk, article, [LINK_B, ("", ""), row])
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in field_error(page, f"{field}-2")  # the third row, as shown
    assert not field_error(page, "url-0") and not field_error(page, "title-0")
    assert api_links(client, article) == [LINK_A]


def test_more_than_twenty_links_are_refused(
    desk: Desk, client: FlaskClient, article: str
) -> None:
    rows = [(f"Link {i}", f"https://news.example.com/{i}") for i in range(21)]
    response = save_links(desk, article, rows)
    assert response.status_code == 422
    assert "At most 20 links." in response.get_data(as_text=True)
    assert api_links(client, article) == []


# -- articles ---------------------------------------------------------------------------
ARTICLE_FORM = {
    "id": "harbour-expansion", "title": "The harbour doubles its quays",
    "url": "https://news.example.com/harbour", "section": "Business",
    "published_at": "2026-03-01T09:30", "tz": "Europe/Berlin", "tags": "harbour, trade",
}


def test_register_and_edit_an_article(desk: Desk, client: FlaskClient) -> None:
    assert 'href="/dashboard/articles/new"' in desk.get("/dashboard").get_data(as_text=True)
    response = desk.post("/dashboard/articles/new", ARTICLE_FORM)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard/articles/harbour-expansion"
    stored = client.get("/api/v1/articles/harbour-expansion").json
    assert stored["title"] == ARTICLE_FORM["title"] and stored["tags"] == ["harbour", "trade"]
    assert stored["published_at"].startswith("2026-03-01T08:30:00")  # Berlin is UTC+1
    again = desk.post("/dashboard/articles/new", ARTICLE_FORM)
    assert again.status_code == 422
    assert "already registered" in field_error(again.get_data(as_text=True), "id")
    edited = desk.post("/dashboard/articles/harbour-expansion/edit",
                       {**ARTICLE_FORM, "section": "Economy", "tz": "UTC"})
    assert edited.status_code == 302
    stored = client.get("/api/v1/articles/harbour-expansion").json
    assert stored["section"] == "Economy" and stored["published_at"].startswith("2026-03-01T09:30")
    assert "Edit article" in desk.get("/dashboard/articles/harbour-expansion").get_data(
        as_text=True)


@pytest.mark.parametrize("change, field, message", [
    ({"id": "bad id"}, "id", "Ids are 1-128 characters"),
    ({"title": ""}, "title", "Length must be between 1 and 300."),
    ({"url": "news.example.com/harbour"}, "url", "Not a valid URL."),
    ({"section": ""}, "section", "Length must be between 1 and 64."),
    ({"published_at": ""}, "published_at", "Field may not be null."),
    ({"published_at": "yesterday"}, "published_at", "Not a valid datetime."),
])
def test_an_invalid_article_stores_nothing(
    desk: Desk, client: FlaskClient, change: dict[str, Any], field: str, message: str
) -> None:
    response = desk.post("/dashboard/articles/new", {**ARTICLE_FORM, **change})
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert client.get("/api/v1/articles/harbour-expansion").status_code == 404


def test_a_title_over_the_limit_is_refused_by_name_not_cut(
        desk: Desk, client: FlaskClient) -> None:
    """No maxlength cuts a pasted title silently: the server refuses it and says which
    field, above the form and under the field."""
    page = desk.get("/dashboard/articles/new").get_data(as_text=True)
    assert "maxlength" not in page
    response = desk.post("/dashboard/articles/new", {**ARTICLE_FORM, "title": "t" * 2000})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<a href="#title">Title</a>: Length must be between 1 and 300.' in html
    assert "Length must be between 1 and 300." in field_error(html, "title")
    assert client.get("/api/v1/articles/harbour-expansion").status_code == 404


def test_an_invalid_article_edit_stores_nothing(
    desk: Desk, client: FlaskClient, article: str
) -> None:
    before = client.get(f"/api/v1/articles/{article}").json
    response = desk.post(f"/dashboard/articles/{article}/edit",
                         {**ARTICLE_FORM, "url": "mailto:desk@example.com"})
    assert response.status_code == 422
    assert "Not a valid URL." in field_error(response.get_data(as_text=True), "url")
    assert client.get(f"/api/v1/articles/{article}").json == before


# -- admin ------------------------------------------------------------------------------
ADMIN_PAGES = [("GET", "/dashboard/admin/tokens"), ("POST", "/dashboard/admin/tokens"),
               ("POST", "/dashboard/admin/tokens/abc123/revoke"),
               ("GET", "/dashboard/admin/webhooks"), ("POST", "/dashboard/admin/webhooks"),
               ("POST", "/dashboard/admin/webhooks/wh_1/delete"),
               ("GET", "/dashboard/admin/audit")]


@pytest.mark.parametrize("method, path", ADMIN_PAGES)
def test_editors_get_403_on_admin_pages(desk: Desk, method: str, path: str) -> None:
    response = desk.get(path) if method == "GET" else desk.post(path, {"role": "admin"})
    assert response.status_code == 403
    assert "Only admins" in response.get_data(as_text=True)


def test_the_admin_link_shows_for_admins_only(desk: Desk, admin_desk: Desk) -> None:
    assert "/dashboard/admin/tokens" not in desk.get("/dashboard").get_data(as_text=True)
    assert "/dashboard/admin/tokens" in admin_desk.get("/dashboard").get_data(as_text=True)


def test_admin_creates_a_token_shown_once_and_revokes_it(
    admin_desk: Desk, client: FlaskClient, store: Any
) -> None:
    response = admin_desk.post("/dashboard/admin/tokens", {"name": "CMS", "role": "editor"})
    assert response.status_code == 201
    token = re.search(r'id="created-token" type="text" readonly value="([^"]+)"',
                      response.get_data(as_text=True))
    assert token
    headers = {"Authorization": f"Bearer {token.group(1)}"}
    assert client.get("/api/v1/stats/articles", headers=headers).status_code == 200
    listing = admin_desk.get("/dashboard/admin/tokens").get_data(as_text=True)
    assert token.group(1) not in listing and "CMS" in listing  # shown once
    [record] = [t for t in tokens.list_all(store) if t["name"] == "CMS"]
    # The list's Revoke asks first; nothing is revoked until the confirmation is posted.
    asked = admin_desk.get(f"/dashboard/admin/tokens/{record['id']}/revoke")
    assert asked.status_code == 200
    page = asked.get_data(as_text=True)
    assert "Revoke the token CMS?" in page and "signed out" not in page
    assert client.get("/api/v1/stats/articles", headers=headers).status_code == 200
    revoked = admin_desk.post(f"/dashboard/admin/tokens/{record['id']}/revoke", {})
    assert revoked.status_code == 302
    assert client.get("/api/v1/stats/articles", headers=headers).status_code == 401
    assert admin_desk.post(f"/dashboard/admin/tokens/{record['id']}/revoke",
                           {}).status_code == 404


@pytest.mark.parametrize("form, field, message", [
    ({"role": "owner", "name": "x"}, "role", "Must be one of: editor, admin."),
    ({"role": "editor", "name": "n" * 101}, "name", "Longer than maximum length 100."),
    ({"role": "editor", "name": ""}, "name", "Must not be blank."),
    ({"role": "editor", "name": "   "}, "name", "Must not be blank."),
])
def test_an_invalid_token_form_creates_nothing(
    admin_desk: Desk, store: Any, form: dict[str, str], field: str, message: str
) -> None:
    before = len(tokens.list_all(store))
    response = admin_desk.post("/dashboard/admin/tokens", form)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert len(tokens.list_all(store)) == before


@pytest.mark.usefixtures("loopback_only")
def test_admin_registers_and_removes_a_webhook(
    admin_desk: Desk, client: FlaskClient, admin: dict[str, str]
) -> None:
    page = admin_desk.get("/dashboard/admin/webhooks").get_data(as_text=True)
    secret = re.search(r'id="secret" name="secret" type="text"[^>]*value="([^"]+)"', page)
    assert secret and len(secret.group(1)) >= 16
    response = admin_desk.post("/dashboard/admin/webhooks", {
        "url": "https://hooks.engage.test/engage", "events": ["poll.*", "reaction.vote"],
        "secret": secret.group(1)})
    assert response.status_code == 201
    assert secret.group(1) not in response.get_data(as_text=True)
    [hook] = client.get("/api/v1/webhooks", headers=admin).json["webhooks"]
    assert hook["url"] == "https://hooks.engage.test/engage"
    assert hook["events"] == ["poll.*", "reaction.vote"]
    assert admin_desk.post(f"/dashboard/admin/webhooks/{hook['id']}/delete",
                           {}).status_code == 302
    assert client.get("/api/v1/webhooks", headers=admin).json["webhooks"] == []


@pytest.mark.parametrize("change, field, message", [
    ({"url": "ftp://hooks.engage.test"}, "url", "Not a valid URL."),
    ({"events": []}, "events", "Length must be between 1"),
    ({"events": ["poll.everything"]}, "events", "Unknown event type"),
    ({"secret": "short"}, "secret", "Length must be between 16 and 256."),
    ({"url": "http://127.0.0.1:8080/hook"}, "url", "is not a public internet address"),
    ({"url": "http://169.254.169.254/latest"}, "url", "is not a public internet address"),
])
@pytest.mark.usefixtures("loopback_only")
def test_an_invalid_webhook_registers_nothing(
    admin_desk: Desk, client: FlaskClient, admin: dict[str, str],
    change: dict[str, Any], field: str, message: str,
) -> None:
    form = {"url": "https://hooks.engage.test/engage", "events": ["*"],
            "secret": "s" * 32, **change}
    response = admin_desk.post("/dashboard/admin/webhooks", form)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert client.get("/api/v1/webhooks", headers=admin).json["webhooks"] == []


def test_an_admin_revoking_their_own_token_is_told_why_they_are_signed_out(
        admin_desk: Desk, admin_token: str, store: Any) -> None:
    me = tokens.verify(store, admin_token)
    assert me is not None
    page = admin_desk.get(f"/dashboard/admin/tokens/{me['id']}/revoke").get_data(as_text=True)
    assert "It is the token you are signed in with: you will be signed out." in page
    response = admin_desk.post(f"/dashboard/admin/tokens/{me['id']}/revoke", {})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard/signin?revoked=1"
    signin = admin_desk.get(response.headers["Location"]).get_data(as_text=True)
    assert "You revoked the token you were signed in with" in signin
    assert admin_desk.get("/dashboard/admin/tokens").status_code == 302  # signed out


def test_token_roles_are_the_stores(admin_desk: Desk) -> None:
    assert schemas.TOKEN_ROLES == tokens.ROLES


# -- every new page ---------------------------------------------------------------------
def test_new_pages_run_no_inline_script_and_keep_the_headers(
    desk: Desk, admin_desk: Desk, article: str, client: FlaskClient, editor: dict[str, str]
) -> None:
    poll = _one_poll(client, editor)
    pages = [(desk, "/dashboard/polls/new"), (desk, f"/dashboard/polls/{poll['id']}/edit"),
             (desk, f"/dashboard/articles/{article}/links"), (desk, "/dashboard/articles/new"),
             (desk, f"/dashboard/articles/{article}/edit"),
             (admin_desk, "/dashboard/admin/tokens"), (admin_desk, "/dashboard/admin/webhooks")]
    for who, path in pages:
        response = who.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "private, no-store"
        text = response.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert not re.search(r"\son[a-z]+=", text), path
        assert 'name="viewport"' in text


def test_signed_out_forms_send_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/dashboard/polls/new")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/signin")


def test_tokens_show_their_last_use_and_expire(
    admin_desk: Desk, client: FlaskClient, store: Any, clock: Any
) -> None:
    response = admin_desk.post("/dashboard/admin/tokens",
                               {"name": "Short-lived", "role": "editor", "expires_days": "2"})
    assert response.status_code == 201
    secret = re.search(r'id="created-token" type="text" readonly value="([^"]+)"',
                       response.get_data(as_text=True))
    assert secret
    headers = {"Authorization": f"Bearer {secret.group(1)}"}
    [record] = [t for t in tokens.list_all(store) if t["name"] == "Short-lived"]
    assert record["last_used"] is None and record["expires_at"]
    assert client.get("/api/v1/stats/articles", headers=headers).status_code == 200
    [record] = [t for t in tokens.list_all(store) if t["name"] == "Short-lived"]
    used = datetime.fromisoformat(record["last_used"])
    assert used == clock().replace(second=0, microsecond=0)
    row = admin_desk.get("/dashboard/admin/tokens").get_data(as_text=True)
    row = row[row.index(f'data-token="{record["id"]}"'):]
    row = row[:row.index("</tr>")]
    assert used.strftime("%d %b %Y %H:%M UTC") in row and "never" not in row
    clock.advance(2 * 86400)
    assert client.get("/api/v1/stats/articles", headers=headers).status_code == 401
    refused = admin_desk.post("/dashboard/admin/tokens",
                              {"name": "x", "role": "editor", "expires_days": "0"})
    assert refused.status_code == 422
    assert "Must be greater than or equal to 1" in field_error(
        refused.get_data(as_text=True), "expires_days")
