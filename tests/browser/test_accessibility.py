"""axe-core (WCAG 2.1 A/AA and best practice) over every page a reader or editor sees.

In light and dark colour schemes, at a desktop and a phone width. The axe-core build
comes with the `axe-playwright-python` package: nothing is fetched at run time.
To cover a new page, add a row to PAGES.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

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
    signed_in: bool
    ready: str  # a selector that is there once the page has drawn what it fetches
    dark: bool = False  # has a dark scheme of its own (else its dark screenshot is the same)
    full_page: bool = True  # screenshot the whole page, not only the first screen


PAGES = [
    Page("demo", "/demo/korea-china-reset", False, "[data-engage-article] >> .b", dark=True),
    Page("signin", "/dashboard/signin", False, "#token"),
    Page("overview", "/dashboard", True, "#top-approved"),
    Page("article", "/dashboard/articles/korea-china-reset", True, "#reactions-chart svg"),
    Page("polls", "/dashboard/polls", True, ".poll"),
    Page("live", "/dashboard/live", True, "#live-feed li"),
    Page("api-docs", "/api/docs", False, "main", dark=True, full_page=False),
]


@pytest.fixture(scope="module")
def axe() -> Axe:
    return Axe()


@pytest.fixture
def signed_in_context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(8000)
    page = context.new_page()
    page.goto("/dashboard/signin")
    page.fill("#token", live_server.editor["Authorization"].split(" ", 1)[1])
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard")
    page.close()
    try:
        yield context
    finally:
        context.close()


def report(results: Any) -> str:
    lines = []
    for violation in results.response["violations"]:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {' '.join(map(str, node['target']))}: "
                         f"{node.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("target", PAGES, ids=lambda p: p.name)
def test_no_axe_violations(signed_in_context: Any, axe: Axe, target: Page, scheme: str,
                           width: str) -> None:
    page = signed_in_context.new_page()
    page.set_viewport_size({"width": WIDTHS[width], "height": 900})
    page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
    page.goto(target.path)
    if not target.signed_in:
        assert "/signin" not in page.url or target.name == "signin"
    page.locator(target.ready).first.wait_for(state="attached")
    results = axe.run(page, options=AXE_RULES)
    if scheme == "light" or (target.dark and width == "desktop"):
        shot = scheme if width == "desktop" else width
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"page-{target.name}-{shot}.png"),
                        full_page=target.full_page)
    assert results.violations_count == 0, report(results)
