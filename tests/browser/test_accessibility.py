"""axe-core (WCAG 2.1 A/AA and best practice) over every page a reader or editor sees.

In light and dark colour schemes, at a desktop and a phone width. The axe-core build
comes with the `axe-playwright-python` package: nothing is fetched at run time.
To cover a new page, add a row to PAGES.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from engage.store import tokens
from tests.browser.conftest import SCREENSHOTS, LiveServer

pytestmark = pytest.mark.browser

AXE_RULES = {"runOnly": {"type": "tag",
                         "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
             "resultTypes": ["violations"]}
SCHEMES = ["light", "dark"]
WIDTHS = {"desktop": 1280, "phone": 375}


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    role: str  # who is signed in: "" (nobody), "editor" or "admin"
    ready: str  # a selector that is there once the page has drawn what it fetches
    dark: bool = False  # has a dark scheme of its own (else its dark screenshot is the same)
    full_page: bool = True  # screenshot the whole page, not only the first screen


PAGES = [
    Page("demo", "/demo/korea-china-reset", "", "[data-engage-article] >> .b", dark=True),
    Page("signin", "/dashboard/signin", "", "#token"),
    Page("overview", "/dashboard", "editor", "#top-approved"),
    Page("article", "/dashboard/articles/korea-china-reset", "editor", "#reactions-chart svg"),
    Page("article-month", "/dashboard/articles/korea-china-reset?bucket=day", "editor",
         "#reactions-chart svg"),
    Page("polls", "/dashboard/polls", "editor", ".poll"),
    Page("poll", "/dashboard/polls/korea-china-2026", "editor", "#poll-history svg"),
    Page("live", "/dashboard/live", "editor", "#live-feed li"),
    Page("poll-new", "/dashboard/polls/new", "editor", "form"),
    Page("poll-edit", "/dashboard/polls/korea-china-2026/edit", "editor", "form"),
    Page("article-new", "/dashboard/articles/new", "editor", "form"),
    Page("article-edit", "/dashboard/articles/korea-china-reset/edit", "editor", "form"),
    Page("links-edit", "/dashboard/articles/korea-china-reset/links", "editor", "form"),
    Page("admin-tokens", "/dashboard/admin/tokens", "admin", "form"),
    Page("admin-webhooks", "/dashboard/admin/webhooks", "admin", "form"),
    Page("admin-sites", "/dashboard/admin/sites", "admin", "form"),
    Page("admin-site-edit", "/dashboard/admin/sites/default", "admin", "form"),
    Page("alerts", "/dashboard/alerts", "editor", "form"),
    Page("api-docs", "/api/docs", "", ".opblock", full_page=False),
]


@pytest.fixture(scope="module")
def axe() -> Axe:
    return Axe()


@pytest.fixture(scope="module")
def staff_tokens(live_server: LiveServer) -> dict[str, str]:
    with live_server.app.app_context():
        admin = tokens.create(live_server.store, "admin", "accessibility tests")[0]
    return {"editor": live_server.editor["Authorization"].split(" ", 1)[1], "admin": admin}


def open_as(browser: Any, live_server: LiveServer, role: str,
            staff_tokens: dict[str, str]) -> Any:
    """A fresh browser context, signed in to the dashboard as `role` (or not at all)."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(8000)
    if role:
        page = context.new_page()
        page.goto("/dashboard/signin")
        page.fill("#token", staff_tokens[role])
        with page.expect_navigation(url="**/dashboard"):
            page.click("button[type=submit]")
        page.close()
    return context


def report(results: Any) -> str:
    lines = []
    for violation in results.response["violations"]:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {' '.join(map(str, node['target']))}: "
                         f"{node.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


@pytest.mark.parametrize("target", PAGES, ids=lambda p: p.name)
def test_no_axe_violations(browser: Any, live_server: LiveServer, staff_tokens: dict[str, str],
                           axe: Axe, target: Page) -> None:
    """Each scheme at each width, on one signed-in page: the media features and the
    viewport change the page in place, as they do for a reader who switches them."""
    context = open_as(browser, live_server, target.role, staff_tokens)
    found = {}
    try:
        page = context.new_page()
        response = page.goto(target.path)
        assert response is not None and response.status == 200
        assert page.url.endswith(target.path)  # not sent to sign in
        page.locator(target.ready).first.wait_for(state="attached")
        for scheme in SCHEMES:
            for width in WIDTHS:
                page.set_viewport_size({"width": WIDTHS[width], "height": 900})
                page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
                results = axe.run(page, options=AXE_RULES)
                if scheme == "light" or (target.dark and width == "desktop"):
                    shot = scheme if width == "desktop" else width
                    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SCREENSHOTS / f"page-{target.name}-{shot}.png"),
                                    full_page=target.full_page)
                if results.violations_count:
                    found[f"{scheme} {width}"] = report(results)
        assert not found, found
    finally:
        context.close()
