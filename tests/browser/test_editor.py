"""The editors' forms in headless chromium: a poll from the form to the widget and back,
related links the widget follows, an article registered, tokens made and revoked by an
admin, the admin pages refused to editors; axe-core on every new page, light and dark,
and no sideways scrolling at 375 px.

Writes docs/screenshots/editor-*.png and admin-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from engage.store import tokens
from tests.browser.conftest import SCREENSHOTS, LiveServer

pytestmark = pytest.mark.browser


def editor_token(live_server: LiveServer) -> str:
    return live_server.editor["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def admin_token(live_server: LiveServer) -> str:
    with live_server.app.app_context():
        return tokens.create(live_server.store, "admin", "browser admin")[0]


@contextmanager
def signed_in(browser: Any, live_server: LiveServer, token: str,
              **context: Any) -> Iterator[Any]:
    """A page in a fresh context, signed in to the dashboard with `token`."""
    ctx = browser.new_context(base_url=live_server.url,
                              **{"viewport": {"width": 1100, "height": 900}, **context})
    ctx.set_default_timeout(5000)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A refused form answers 422 (or 403), which chromium logs as a failed load; only
    # other console errors count.
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
            and not msg.text.startswith("Failed to load resource") else None)
    try:
        page.goto("/dashboard/signin")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        yield page
        assert errors == []
    finally:
        ctx.close()


@contextmanager
def reader_page(browser: Any, live_server: LiveServer, article_id: str) -> Iterator[Any]:
    """The demo page in a fresh context: no cached widget bundle, a new reader."""
    ctx = browser.new_context(base_url=live_server.url)
    ctx.set_default_timeout(5000)
    page = ctx.new_page()
    try:
        page.goto(f"/demo/{article_id}")
        yield page.locator(f'[data-engage-article="{article_id}"]')
    finally:
        ctx.close()


def api_poll(live_server: LiveServer, question: str) -> dict[str, Any]:
    status, body = live_server.api("GET", "/api/v1/polls", headers=live_server.editor)
    assert status == 200
    [poll] = [p for p in body["polls"] if p["question"] == question]
    return dict(poll)


def curated_titles(live_server: LiveServer, article_id: str) -> list[str]:
    status, body = live_server.api("GET", f"/api/v1/articles/{article_id}/links")
    assert status == 200
    return [link["title"] for link in body["links"] if not link.get("related")]


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


# -- polls ------------------------------------------------------------------------------
def test_poll_from_the_form_through_the_widget_to_closed(
    browser: Any, live_server: LiveServer
) -> None:
    article_id = live_server.article("The night market returns", section="City")
    question = "How often would you visit the night market?"
    with signed_in(browser, live_server, editor_token(live_server),
                   timezone_id="Asia/Seoul") as page:
        page.goto("/dashboard/polls")
        page.get_by_role("link", name="New poll").click()
        page.get_by_label("Question").fill(question)
        for number, label in enumerate(["Every week", "Now and then", "Never"], start=1):
            page.get_by_label(f"Option {number}", exact=True).fill(label)
        page.get_by_label("Article (optional)").fill(article_id)
        page.get_by_label("Closes at (optional)").fill("2099-06-01T12:00")
        expect(page.locator("#closes_at-hint")).to_have_text(
            "Your local time (Asia/Seoul). In UTC: 2099-06-01 03:00 UTC.")
        page.get_by_role("button", name="Preview").click()
        preview = page.locator(".widget-preview")
        expect(preview.get_by_role("heading", name=question)).to_be_visible()
        expect(preview.locator(".wp-pill")).to_have_text(["Every week", "Now and then", "Never"])
        shot(page, "editor-poll-form.png")
        status, body = live_server.api("GET", f"/api/v1/articles/{article_id}/polls")
        assert status == 200 and body["polls"] == []  # a preview publishes nothing
        page.get_by_role("button", name="Publish poll").click()
        expect(page.get_by_role("status")).to_have_text(re.compile("Poll created"))
        poll = api_poll(live_server, question)
        assert poll["article"] == article_id
        assert poll["closes_at"].startswith("2099-06-01T03:00:00")

        with reader_page(browser, live_server, article_id) as widget:
            box = widget.get_by_role("group", name=question)
            box.get_by_role("button", name="Now and then").click()
            expect(box.get_by_role("button", name="Now and then")).to_have_attribute(
                "aria-pressed", "true")
        assert api_poll(live_server, question)["results"]["counts"]["o2"] == 1

        page.goto("/dashboard/polls")
        page.get_by_role("link", name=f"Edit poll: {question}").click()
        # The stored UTC time is shown back in the editor's zone.
        expect(page.get_by_label(re.compile("^Closes at"))).to_have_value("2099-06-01T12:00")
        shot(page, "editor-poll-edit.png")
        edited = "How often will you visit the night market?"
        page.get_by_label("Question").fill(edited)
        page.get_by_label("Question").press("Enter")  # Enter saves, as in any form
        expect(page.get_by_role("status")).to_have_text("Poll saved.")
        assert api_poll(live_server, edited)["closes_at"].startswith("2099-06-01T03:00:00")

        with reader_page(browser, live_server, article_id) as widget:
            expect(widget.get_by_role("heading", name=edited)).to_be_visible()

        page.goto(f"/dashboard/polls/{poll['id']}/edit")
        page.get_by_role("button", name="Close poll").click()
        expect(page.get_by_role("status")).to_have_text("Poll closed.")
        assert api_poll(live_server, edited)["status"] == "closed"
        with reader_page(browser, live_server, article_id) as widget:
            box = widget.get_by_role("group", name=edited)
            expect(box.get_by_text("This poll is closed.")).to_be_visible()
            expect(box.get_by_role("button", name="Never")).to_be_disabled()


def test_an_invalid_poll_is_marked_and_not_stored(
    browser: Any, live_server: LiveServer
) -> None:
    with signed_in(browser, live_server, editor_token(live_server)) as page:
        page.goto("/dashboard/polls/new")
        page.get_by_label("Question").fill("Only one option?")
        page.get_by_label("Option 1", exact=True).fill("Alone")
        page.get_by_role("button", name="Publish poll").click()
        expect(page.locator("#options-error")).to_have_text(
            re.compile("Length must be between 2 and 10."))
        page.get_by_label("Option 2", exact=True).fill("Together")
        page.get_by_label("Several options", exact=True).check()
        page.get_by_label(re.compile("^At most")).fill("3")
        page.get_by_role("button", name="Publish poll").click()
        expect(page.locator("#max_choices-error")).to_have_text(
            re.compile("Cannot exceed the number of options."))
        expect(page.get_by_label(re.compile("^At most"))).to_have_attribute(
            "aria-invalid", "true")
        expect(page.locator("#options-error")).to_have_count(0)
        # The summary's link takes the keyboard to the field.
        page.get_by_role("alert").get_by_role("link", name="At most").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_label(re.compile("^At most"))).to_be_focused()
        expect(page.get_by_label("Question")).to_have_value("Only one option?")
    status, body = live_server.api("GET", "/api/v1/polls", headers=live_server.editor)
    assert status == 200
    assert not [p for p in body["polls"] if p["question"] == "Only one option?"]


# -- related links ----------------------------------------------------------------------
def test_related_links_added_reordered_removed_and_the_widget_follows(
    browser: Any, live_server: LiveServer
) -> None:
    section = "Harbour-" + live_server.article()[2:8]
    article_id = live_server.article("Quay works begin", section=section)
    live_server.article("The ferry timetable changes", section=section)

    def widget_titles() -> list[str]:
        with reader_page(browser, live_server, article_id) as widget:
            expect(widget.locator(".links")).to_be_visible()
            return list(widget.locator(".links a").all_text_contents())

    with signed_in(browser, live_server, editor_token(live_server)) as page:
        page.goto(f"/dashboard/articles/{article_id}")
        page.get_by_role("link", name="Edit related links").click()
        expect(page.locator("#slots li")).to_have_count(4)
        for title, url in [("Dredging explained", "https://news.example.com/dredging"),
                           ("Who pays for the quays", "https://news.example.com/quays")]:
            page.get_by_label("New link: title").fill(title)
            page.get_by_label("New link: address").fill(url)
            page.get_by_role("button", name="Save links").click()
            expect(page.get_by_role("status")).to_have_text(re.compile(r"^Links saved\. "))
        assert curated_titles(live_server, article_id) == [
            "Dredging explained", "Who pays for the quays"]
        # Two curated slots, then the section's fill-in (one other article).
        expect(page.locator("#slots li .slot-kind")).to_have_text(
            ["Curated", "Curated", "Fill-in", "Fill-in"])
        assert widget_titles() == ["Dredging explained", "Who pays for the quays",
                                   "The ferry timetable changes"]

        # A bad address: its message sits at the field and nothing is stored.
        page.get_by_label("New link: title").fill("Archive")
        page.get_by_label("New link: address").fill("ftp://archive.example.com/quays")
        page.get_by_label("New link: address").press("Enter")
        expect(page.locator("#url-2-error")).to_have_text(re.compile("Not a valid URL."))
        shot(page, "editor-links-error.png")
        assert curated_titles(live_server, article_id) == [
            "Dredging explained", "Who pays for the quays"]

        page.goto(f"/dashboard/articles/{article_id}/links")
        page.get_by_role("button", name="Move link 2 up").click()
        expect(page.get_by_role("status")).to_have_text(re.compile(
            r"^Links reordered\. Readers may see the previous links for up to \d+ seconds"))
        assert widget_titles()[:2] == ["Who pays for the quays", "Dredging explained"]
        shot(page, "editor-links.png")

        remove = page.get_by_role("button", name="Remove link 1")
        remove.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_have_text(re.compile(r"^Link removed\. "))
        assert curated_titles(live_server, article_id) == ["Dredging explained"]
        assert widget_titles() == ["Dredging explained", "The ferry timetable changes"]


# -- articles ---------------------------------------------------------------------------
def test_register_an_article_from_the_overview(browser: Any, live_server: LiveServer) -> None:
    article_id = "harbour-" + live_server.article()[2:10]
    with signed_in(browser, live_server, editor_token(live_server)) as page:
        page.get_by_role("link", name="Register an article").click()
        page.get_by_label("Article id").fill(article_id)
        page.get_by_label("Title").fill("The harbour doubles its quays")
        page.get_by_label("Address").fill("news.example.com/harbour")
        page.get_by_label("Section").fill("Business")
        page.get_by_role("button", name="Register article").click()
        expect(page.locator("#url-error")).to_have_text(re.compile("Not a valid URL."))
        assert live_server.api("GET", f"/api/v1/articles/{article_id}")[0] == 404
        shot(page, "editor-article-error.png")
        page.get_by_label("Address").fill("https://news.example.com/harbour")
        page.get_by_role("button", name="Register article").click()
        expect(page.get_by_role("heading", name="The harbour doubles its quays",
                                level=1)).to_be_visible()
        status, body = live_server.api("GET", f"/api/v1/articles/{article_id}")
        assert status == 200 and body["section"] == "Business"
        page.get_by_role("link", name="Edit article").click()
        expect(page.get_by_label("Title")).to_have_value("The harbour doubles its quays")
        shot(page, "editor-article.png")


# -- admin ------------------------------------------------------------------------------
def test_admin_creates_and_revokes_a_token(
    browser: Any, live_server: LiveServer, admin_token: str
) -> None:
    with signed_in(browser, live_server, admin_token) as page:
        page.get_by_role("link", name="Admin").click()
        shot(page, "admin-tokens.png")
        page.get_by_label(re.compile("^Name")).fill("Newsroom CMS")
        page.get_by_label("Role").select_option("editor")
        page.get_by_role("button", name="Create token").click()
        token = page.get_by_label("New token").input_value()
        headers = {"Authorization": f"Bearer {token}"}
        assert live_server.api("GET", "/api/v1/stats/articles", headers=headers)[0] == 200
        page.goto("/dashboard/admin/tokens")
        expect(page.get_by_label("New token")).to_have_count(0)  # shown once
        page.get_by_role("link", name="Revoke token Newsroom CMS").click()
        # Asked first: nothing is revoked until the confirmation.
        expect(page.get_by_role("alertdialog")).to_contain_text("Revoke the token Newsroom CMS?")
        assert live_server.api("GET", "/api/v1/stats/articles", headers=headers)[0] == 200
        page.get_by_role("button", name="Revoke token").click()
        expect(page.get_by_role("status")).to_have_text(re.compile("revoked"))
        assert live_server.api("GET", "/api/v1/stats/articles", headers=headers)[0] == 401

        page.get_by_role("link", name="Webhooks").click()
        shot(page, "admin-webhooks.png")


def test_editors_do_not_see_the_admin_pages(browser: Any, live_server: LiveServer) -> None:
    with signed_in(browser, live_server, editor_token(live_server)) as page:
        expect(page.get_by_role("navigation", name="Dashboard").get_by_role(
            "link", name="Admin")).to_have_count(0)
        for path in ("/dashboard/admin/tokens", "/dashboard/admin/webhooks",
                     "/dashboard/admin/audit", "/dashboard/admin/sites"):
            response = page.goto(path)
            assert response is not None and response.status == 403
            expect(page.get_by_role("heading", level=1)).to_have_text(
                "Only admins manage tokens, webhooks and sites.")


# -- every new page: axe-core, light and dark, and 375 px --------------------------------
def _pages(live_server: LiveServer) -> list[tuple[str, str]]:
    article_id = live_server.article("An article for the checks")
    status, poll = live_server.api("POST", "/api/v1/polls", {
        "question": "Checked?", "options": ["Yes", "No"], "article": article_id},
        live_server.editor)
    assert status == 201
    live_server.links(article_id, [{"title": "A link", "url": "https://news.example.com/a"}])
    return [
        ("editor", "/dashboard/polls/new"),
        ("editor", f"/dashboard/polls/{poll['id']}/edit"),
        ("editor", f"/dashboard/articles/{article_id}/links"),
        ("editor", "/dashboard/articles/new"),
        ("editor", f"/dashboard/articles/{article_id}/edit"),
        ("admin", "/dashboard/admin/tokens"),
        ("admin", "/dashboard/admin/webhooks"),
        ("admin", "/dashboard/admin/audit"),
        ("admin", "/dashboard/admin/sites"),
    ]


def _with_errors(page: Any, path: str) -> None:
    """The page again with its field messages showing (what axe must also pass)."""
    if path.endswith("/links"):
        page.get_by_label("New link: title").fill("x")
        page.get_by_label("New link: address").fill("ftp://x")
        page.get_by_role("button", name="Save links").click()
    else:
        page.locator("form.form button[type=submit]").first.click()
    expect(page.locator(".field-error").first).to_be_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_violation_and_375_px_fits(
    browser: Any, live_server: LiveServer, admin_token: str, scheme: str
) -> None:
    axe = Axe()
    pages = _pages(live_server)
    for role in ("editor", "admin"):
        token = editor_token(live_server) if role == "editor" else admin_token
        with signed_in(browser, live_server, token, color_scheme=scheme) as page:
            for who, path in pages:
                if who != role:
                    continue
                for state in ("blank", "errors", "preview"):
                    page.set_viewport_size({"width": 1100, "height": 900})
                    page.goto(path)
                    if state == "preview":
                        if not path.endswith("/polls/new"):
                            continue
                        page.get_by_label("Question").fill("Seen in the widget's colours?")
                        page.get_by_label("Option 1", exact=True).fill("Yes")
                        page.get_by_label("Option 2", exact=True).fill("No")
                        page.get_by_role("button", name="Preview").click()
                        expect(page.locator(".widget-preview")).to_be_visible()
                    if state == "errors":
                        if "/edit" in path or path.endswith(("/tokens", "/audit")):
                            continue  # no field a browser can get wrong on first sight
                        _with_errors(page, path)
                    results = axe.run(page)
                    assert results.violations_count == 0, (path, state,
                                                           results.generate_report())
                    page.set_viewport_size({"width": 375, "height": 800})
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 0, (path, state, overflow)
