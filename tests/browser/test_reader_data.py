"""Readers own their data, in a real browser: nothing stored before the first vote,
consent before a token, "Your data" by keyboard, an expired token renewed (issue 26)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from engage.identity import get_identity
from engage.store import reactions
from tests.browser.conftest import LiveServer, Tab
from tests.browser.test_widget import button, expect_vote, widget

pytestmark = pytest.mark.browser

STORED = """async () => ({
    local: localStorage.length, session: sessionStorage.length, cookies: document.cookie,
    idb: (await indexedDB.databases()).length})"""
NOTHING = {"local": 0, "session": 0, "cookies": "", "idb": 0}


def mints(tab: Tab) -> list[str]:
    return [r for r in tab.api_requests if r.startswith("POST ") and "/readers" in r]


def publish(live_server: LiveServer, aid: str, name: str, attrs: str = "") -> str:
    return live_server.publish(f"/{name}.html", f"""<!doctype html><html lang="en"><head>
      <meta charset="utf-8"></head><body><div data-engage-article="{aid}"></div>
      <script src="{live_server.url}/widget.js" {attrs} async></script></body></html>""")


def test_nothing_is_stored_until_the_first_vote(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    page = tab.page
    page.goto(publish(live_server, aid, "quiet"))
    expect_vote(page, aid, 0, 0, None)
    expect(widget(page, aid).get_by_role("link", name="Your data")).to_be_visible()
    assert page.evaluate(STORED) == NOTHING and mints(tab) == []
    button(page, aid, "Yes").click()
    expect_vote(page, aid, 1, 0, "Yes")
    assert page.evaluate(STORED)["local"] == 1 and len(mints(tab)) == 1


def test_with_consent_required_no_token_before_the_page_grants_it(
    tab: Tab, live_server: LiveServer,
) -> None:
    aid = live_server.article()
    live_server.app.config["READER_CONSENT"] = True
    try:
        page = tab.page
        page.goto(publish(live_server, aid, "consent"))
        button(page, aid, "Yes").click()
        expect(widget(page, aid).get_by_role("status")).to_have_text(re.compile("try again"))
        assert mints(tab) == [] and page.evaluate(STORED) == NOTHING
        page.evaluate("engage.consent()")
        button(page, aid, "Yes").click()
        expect_vote(page, aid, 1, 0, "Yes")
        assert len(mints(tab)) == 1
        # The attribute is the same signal, given before the script runs.
        other = live_server.article()
        page.goto(publish(live_server, other, "consented", "data-engage-consent"))
        button(page, other, "No").click()
        expect_vote(page, other, 0, 1, "No")
    finally:
        live_server.app.config["READER_CONSENT"] = False


def test_your_data_by_keyboard_exports_and_erases(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    page = tab.page
    page.goto(publish(live_server, aid, "mine"))
    button(page, aid, "No").click()
    expect_vote(page, aid, 0, 1, "No")
    link = widget(page, aid).get_by_role("link", name="Your data")
    link.focus()
    with page.context.expect_page() as opened:
        page.keyboard.press("Enter")
    data = opened.value
    data.on("dialog", lambda dialog: dialog.accept())
    data.wait_for_load_state()
    assert data.url.startswith(live_server.url + "/your-data?lang=en")
    assert "#" not in data.url  # the token left the address bar
    expect(data.get_by_role("heading", name="Your data")).to_be_visible()
    data.get_by_role("button", name="Download my data").focus()
    data.keyboard.press("Enter")
    expect(data.get_by_role("status")).to_have_text("Downloaded.")
    expect(data.locator("#json")).to_contain_text(f'"article": "{aid}"')
    data.get_by_role("button", name="Erase my data").click()
    expect(data.get_by_role("status")).to_have_text(re.compile("^Erased"))
    assert live_server.counts(aid) == {"yes": 0, "no": 0}
    # Back on the article, the erased token is replaced by a fresh one on the next vote.
    page.reload()
    button(page, aid, "Yes").click()
    expect_vote(page, aid, 1, 0, "Yes")


def test_your_data_speaks_the_widgets_language(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    page = tab.page
    for lang, label in (("ko", "내 데이터"), ("zh", "我的数据"), ("es", "Tus datos")):
        page.goto(live_server.publish(f"/{lang}.html", f"""<!doctype html><html lang="{lang}">
          <head><meta charset="utf-8"></head><body><div data-engage-article="{aid}"></div>
          <script src="{live_server.url}/widget.js" async></script></body></html>"""))
        expect(widget(page, aid).get_by_role("link", name=label)).to_be_visible()
        page.goto(f"{live_server.url}/your-data?lang={lang}")
        expect(page.get_by_role("heading", name=label)).to_be_visible()
        assert page.locator("html").get_attribute("lang") == lang


def test_an_expired_token_is_renewed_on_the_next_vote_keeping_the_vote(
    browser: Any, live_server: LiveServer,
) -> None:
    aid = live_server.article()
    with live_server.app.app_context():
        identity = get_identity()
        # A token minted before tokens carried a time reads as long expired.
        old = identity.untimed.sign(b"browser-reader").decode()
        reactions.vote(live_server.store, aid, identity.reader_from_token(old), "addr", "yes")
    context = browser.new_context(base_url=live_server.url)
    try:
        context.add_init_script(f"localStorage.setItem('engage.reader', {old!r})")
        page = context.new_page()
        page.goto(f"/demo/{aid}")
        expect_vote(page, aid, 1, 0, None)  # the expired token cannot read its vote
        button(page, aid, "No").click()
        expect_vote(page, aid, 0, 1, "No")  # moved, not counted twice
        assert page.evaluate("localStorage.getItem('engage.reader')") != old
        assert live_server.counts(aid) == {"yes": 0, "no": 1}
    finally:
        context.close()


def test_a_click_after_a_vote_is_the_readers_and_a_plain_one_nobodys(
    tab: Tab, live_server: LiveServer,
) -> None:
    aid = live_server.article()
    target = live_server.article(title="Where the link goes")
    first, second = live_server.links(aid, [
        {"title": "Before voting", "url": f"{live_server.url}/demo/{target}"},
        {"title": "After voting", "url": f"{live_server.url}/demo/{target}?again"},
    ])
    page = tab.page
    page.goto(publish(live_server, aid, "clicks"))
    # No token yet: the plain link, counted and credited to no one.
    widget(page, aid).get_by_role("link", name="Before voting").click()
    page.wait_for_url(f"{live_server.url}/demo/{target}")
    assert live_server.linkstats(aid).get(f"{first['id']}:clicks") == "1"
    page.go_back()
    button(page, aid, "Yes").click()
    expect_vote(page, aid, 1, 0, "Yes")
    token = page.evaluate("localStorage.getItem('engage.reader')")
    widget(page, aid).get_by_role("link", name="After voting").click()
    page.wait_for_url(f"{live_server.url}/demo/{target}?again")
    assert token and token not in page.url  # the token never in an address
    assert live_server.linkstats(aid).get(f"{second['id']}:clicks") == "1"
    status, data = live_server.api("GET", "/api/v1/readers/me/data",
                                   headers={"X-Engage-Reader": token})
    assert status == 200 and [(c["article"], c["link"]) for c in data["clicks"]] == [
        (aid, second["id"])]
