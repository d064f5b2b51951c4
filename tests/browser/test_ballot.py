"""Votes beyond the script tag in Chromium: a newsletter's vote link confirmed by a
reader (and moved from another device), and the widget's form with JavaScript off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import READER_AGENT, LiveServer

pytestmark = pytest.mark.browser

PHONE_AGENT = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
               "Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36")


@pytest.fixture
def device(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """Opens pages in a fresh browser context: `device(javascript=False, agent=...)`."""
    contexts: list[Any] = []

    def open_page(javascript: bool = True, agent: str = READER_AGENT) -> Any:
        context = browser.new_context(base_url=live_server.url, user_agent=agent,
                                      java_script_enabled=javascript)
        context.set_default_timeout(5000)
        contexts.append(context)
        return context.new_page()

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()


def email_links(live_server: LiveServer, article_id: str) -> dict[str, str]:
    status, body = live_server.api("GET", f"/api/v1/articles/{article_id}/email-links",
                                   headers=live_server.editor)
    assert status == 200, body
    return {link["choice"]: link["url"] for link in body["links"]}


def test_a_vote_link_counts_only_when_confirmed_and_moves_from_another_device(
        device: Any, live_server: LiveServer) -> None:
    aid = live_server.article()
    links = email_links(live_server, aid)
    page = device(javascript=False)
    page.goto(links["yes"].replace("{{recipient}}", "reader-42"))
    expect(page.locator("#message")).to_have_text("Tap to confirm your vote:")
    assert live_server.counts(aid) == {"yes": 0, "no": 0}
    page.get_by_role("button", name="Yes").click()
    expect(page.locator("#message")).to_contain_text("is counted")
    expect(page.locator('#counts [data-choice="yes"]')).to_have_text("1")
    assert live_server.counts(aid) == {"yes": 1, "no": 0}
    page.reload()  # a reload shows the page again and posts nothing
    expect(page.locator('#counts [data-choice="yes"]')).to_have_text("1")

    phone = device(agent=PHONE_AGENT)
    phone.goto(links["no"].replace("{{recipient}}", "reader-42"))
    phone.get_by_role("button", name="No").click()
    expect(phone.locator("#message")).to_contain_text("No")
    expect(phone.locator('#counts [data-choice="no"]')).to_have_text("1")
    assert live_server.counts(aid) == {"yes": 0, "no": 1}
    # "Change my vote" on the first device moves the same one vote back.
    page.reload()
    page.get_by_role("button", name="Yes").click()
    expect(page.locator('#counts [data-choice="yes"]')).to_have_text("1")
    assert live_server.counts(aid) == {"yes": 1, "no": 0}


def test_a_tampered_link_gets_a_clear_page(device: Any, live_server: LiveServer) -> None:
    aid = live_server.article()
    url = email_links(live_server, aid)["yes"].replace("{{recipient}}", "r1")
    page = device()
    response = page.goto(url.replace("/v/", "/v/x"))
    assert response is not None and response.status == 400
    expect(page.get_by_role("heading")).to_have_text("This vote cannot be counted")
    expect(page.locator("#message")).to_contain_text("not valid")


def test_the_demo_form_votes_with_javascript_off(device: Any, live_server: LiveServer) -> None:
    aid = live_server.article()
    page = device(javascript=False)
    page.goto(f"/demo/{aid}")
    form = page.locator("form.engage-nojs")
    expect(form.locator('[data-count="yes"]')).to_have_text("0")
    form.get_by_role("button", name="Yes").click()
    page.wait_for_url(f"{live_server.url}/demo/{aid}")
    expect(page.locator('form.engage-nojs [data-count="yes"]')).to_have_text("1")
    # The same browser moves its one vote.
    page.locator("form.engage-nojs").get_by_role("button", name="No").click()
    expect(page.locator('form.engage-nojs [data-count="no"]')).to_have_text("1")
    expect(page.locator('form.engage-nojs [data-count="yes"]')).to_have_text("0")
    assert live_server.counts(aid) == {"yes": 0, "no": 1}


FORM = """<!doctype html><title>{title}</title><h1>{title}</h1>
<div data-engage-article="{aid}"><noscript>
<form method="post" action="{engage}/vote/{aid}">
<input type="hidden" name="next" value="{next}">
<button name="choice" value="yes">Yes</button> <button name="choice" value="no">No</button>
</form></noscript></div>
<script src="{engage}/widget.js" async></script>"""


def test_a_publishers_form_returns_to_the_registered_url_only(
        device: Any, live_server: LiveServer) -> None:
    aid = "t-nojs-publisher"
    url = live_server.publish(f"/news/{aid}", "")
    status, body = live_server.api("PUT", f"/api/v1/articles/{aid}", {
        "title": "A page without JavaScript", "url": url, "section": "Testing",
        "published_at": "2026-01-08T09:00:00Z"}, live_server.editor)
    assert status in (200, 201), body
    live_server.publish(f"/news/{aid}", FORM.format(title="Ours", aid=aid, next=url,
                                                   engage=live_server.url))
    elsewhere = live_server.publish("/elsewhere", FORM.format(
        title="Elsewhere", aid=aid, next="https://evil.example/", engage=live_server.url))
    page = device(javascript=False)
    page.goto(url)
    page.get_by_role("button", name="Yes").click()
    page.wait_for_url(url)
    expect(page.get_by_role("heading")).to_have_text("Ours")
    assert live_server.counts(aid) == {"yes": 1, "no": 0}
    page.goto(elsewhere)
    page.get_by_role("button", name="No").click()
    expect(page.locator("#message")).to_have_text(
        "This form returns readers to its own article only.")
    assert page.url == f"{live_server.url}/vote/{aid}"
    assert live_server.counts(aid) == {"yes": 1, "no": 0}
