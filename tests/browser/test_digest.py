"""The daily digest's HTML in Chromium: axe-core finds nothing, light and dark, desktop
and phone; its plain-text part carries the same figures."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from axe_playwright_python.sync_playwright import Axe

from engage.alerts import digest_figures, render_digest
from tests.browser.conftest import LiveServer, wait_caught_up
from tests.browser.test_accessibility import AXE_RULES, SCHEMES, WIDTHS, report

pytestmark = pytest.mark.browser


def _vote(live_server: LiveServer, article_id: str, choice: str, reason: str | None) -> None:
    status, body = live_server.api("POST", "/api/v1/readers")
    assert status == 201, body
    vote: dict[str, Any] = {"choice": choice, **({"reason": reason} if reason else {})}
    status, body = live_server.api("PUT", f"/api/v1/articles/{article_id}/reactions/mine",
                                   vote, {"X-Engage-Reader": body["reader"]})
    assert status == 200, body


def test_digest_html_has_no_axe_violations(browser: Any, live_server: LiveServer) -> None:
    liked = live_server.article("A well-liked report <and> an ampersand &")
    disliked = live_server.article("A disputed analysis")
    for choice, reason in [("yes", None)] * 6 + [("no", "outdated")]:
        _vote(live_server, liked, choice, reason)
    for choice, reason in [("no", "inaccurate")] * 4 + [("yes", None)]:
        _vote(live_server, disliked, choice, reason)
    wait_caught_up(live_server.store)
    figures = digest_figures(live_server.store, datetime.now(UTC).date(), ZoneInfo("UTC"))
    _subject, text, html = render_digest(live_server.app.config, figures)

    # The same figures in both parts.
    assert figures["best"] and figures["worst"] and figures["reasons"]
    for row in figures["best"] + figures["worst"]:
        share = f"{row['approval'] * 100:.1f} %"
        title = figures["titles"][row["id"]]
        assert f"{title}: {share} of {row['total']} votes" in text
        assert re.search(rf"{re.escape(title)}</a></th><td class=\"n\">{share}</td>"
                         rf"<td class=\"n\">{row['total']}</td>", unescape(html)), title
    for reason in figures["reasons"]:
        assert f"- {reason['reason']}: {reason['count']} -" in text
        assert f"<strong>{reason['reason']}</strong>: {reason['count']}" in html
    assert {"inaccurate", "outdated"} <= {r["reason"] for r in figures["reasons"]}
    assert "&lt;and&gt; an ampersand &amp;" in html

    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content(html)
        found = {}
        for scheme in SCHEMES:
            for width in WIDTHS:
                page.set_viewport_size({"width": WIDTHS[width], "height": 900})
                page.emulate_media(color_scheme=scheme)
                results = Axe().run(page, options=AXE_RULES)
                if results.violations_count:
                    found[f"{scheme} {width}"] = report(results)
        assert not found, found
    finally:
        context.close()
