"""The dashboard by keyboard alone: every step reached with Tab, taken with Enter, and
every control that gets focus on the way shows where the focus is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

POLL = "korea-china-2026"
MAX_TABS = 80

# A focus indicator a sighted keyboard user can see: an outline at least 2 px wide in a
# colour that is not transparent, or a box shadow.
FOCUS_SHOWN = """el => {
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2
    && !/rgba\\(.*, 0\\)$/.test(s.outlineColor);
  const shadow = s.boxShadow !== 'none' && s.boxShadow !== '';
  return {tag: el.tagName, text: (el.innerText || el.value || el.id || '').trim().slice(0, 40),
          visible: el.matches(':focus-visible') && (outline || shadow)};
}"""


@pytest.fixture
def keyboard_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url,
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    yield page
    context.close()
    assert problems == []


def tab_to(page: Any, target: Any) -> list[str]:
    """Press Tab until `target` has the focus; every stop on the way must show focus."""
    stops = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        focus = page.evaluate(f"({FOCUS_SHOWN})(document.activeElement)")
        stops.append(f"{focus['tag']} {focus['text']!r}")
        assert focus["visible"], f"no visible focus on {stops[-1]} (after {stops[:-1]})"
        if target.evaluate("el => el === document.activeElement"):
            return stops
    raise AssertionError(f"{target} not reached with Tab; stops: {stops}")


def test_dashboard_by_keyboard_alone(keyboard_page: Any, live_server: LiveServer) -> None:
    page = keyboard_page
    page.goto("/dashboard")
    page.wait_for_url("**/dashboard/signin**")

    tab_to(page, page.locator("#token"))
    page.keyboard.type(live_server.editor["Authorization"].split(" ", 1)[1])
    tab_to(page, page.get_by_role("button", name="Sign in"))
    with page.expect_navigation(url="**/dashboard"):
        page.keyboard.press("Enter")

    # change the range
    week = page.get_by_role("navigation", name="Range").get_by_role("link", name="Last 7 days")
    tab_to(page, week)
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard?range=7d*")
    expect(week).to_have_attribute("aria-current", "true")

    # open an article from the table
    article = page.locator("table.data a[href='/dashboard/articles/korea-china-reset']")
    tab_to(page, article)
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/articles/korea-china-reset")
    expect(page.locator("#reactions-chart svg")).to_be_visible()

    # close the poll, then reopen it
    tab_to(page, page.get_by_role("navigation", name="Dashboard").get_by_role("link",
                                                                              name="Polls"))
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/polls")
    poll = page.locator(f".poll[data-poll='{POLL}']")
    tab_to(page, poll.get_by_role("button", name="Close"))
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_have_text("Poll closed.")
    tab_to(page, poll.get_by_role("button", name="Reopen"))
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_have_text("Poll reopened.")
    expect(poll.get_by_role("button", name="Close")).to_be_visible()
    status, body = live_server.api("GET", f"/api/v1/polls/{POLL}")
    assert status == 200 and body["status"] == "open"

    # sign out
    tab_to(page, page.get_by_role("button", name="Sign out"))
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/signin**")
    page.goto("/dashboard")
    assert "/dashboard/signin" in page.url
