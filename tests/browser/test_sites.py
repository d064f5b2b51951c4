"""Two sites in one engage, in headless chromium (docs/sites.md): each publisher origin's
widget shows its own site's reaction set and language, a vote with the other site's
choice is refused, and each origin may call the API for its own site's articles only.

Writes docs/screenshots/sites-*.png (the widgets and the dashboard with two sites).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from engage.store import tokens
from tests.browser.conftest import SCREENSHOTS, LiveServer, Tab
from tests.browser.test_editor import shot, signed_in
from tests.live_server import serving

pytestmark = pytest.mark.browser

EMOJI = ["😀", "😮", "😢", "😡", "👍"]


def page_html(live_server: LiveServer, article_id: str, title: str) -> str:
    # No lang on the page: the widget speaks its site's locale.
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
      <body style="font: 16px system-ui; margin: 2rem; max-width: 40rem"><h1>{title}</h1>
      <div data-engage-article="{article_id}"></div>
      <script src="{live_server.url}/widget.js" async></script></body></html>"""


def fetch_status(page: Any, url: str) -> Any:
    """What a script on the page gets from `url`: its status, or "blocked" when the
    browser refuses the answer (no CORS grant for this origin)."""
    return page.evaluate("""url => fetch(url).then(r => r.status, () => 'blocked')""", url)


def test_two_sites_each_with_its_origin_and_set(tab: Tab, browser: Any,
                                                live_server: LiveServer) -> None:
    with live_server.app.app_context():
        admin = tokens.create(live_server.store, "admin", "sites browser test")[0]
    magazine = "magazine-" + uuid.uuid4().hex[:6]
    pages: dict[str, str] = {}

    def magazine_site(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [pages.get(environ.get("PATH_INFO", ""), "not found").encode()]

    with serving(magazine_site) as server:
        origin = f"http://127.0.0.1:{server.server_port}"
        status, site = live_server.api("POST", "/api/v1/sites", {
            "name": magazine, "origins": [origin], "locale": "es",
            "reactions": {"choices": EMOJI, "reason_choice": None, "reasons": []},
        }, {"Authorization": f"Bearer {admin}"})
        assert status == 201, site
        daily = live_server.article("Council passes the budget", section="City")
        feature = live_server.article("Ten recipes for winter", section="Food", site=magazine)
        pages["/feature.html"] = page_html(live_server, feature, "The Magazine")

        # The daily's page, on the default site's origin: yes/no, in English; the
        # magazine's, on its own origin: its five emoji, in Spanish (its locale).
        page = tab.page
        daily_page = live_server.publish("/daily.html", page_html(live_server, daily, "The Daily"))
        for url, own, other, heading, choices, name in [
            (daily_page, daily, feature, "Do you like this article?", ["Yes", "No"], "daily"),
            (origin + "/feature.html", feature, daily, "¿Te gusta este artículo?", EMOJI,
             "magazine"),
        ]:
            page.goto(url)
            box = page.locator(f'[data-engage-article="{own}"]')
            expect(box.get_by_role("heading", name=heading)).to_be_visible()
            shown = box.get_by_role("button")
            expect(shown).to_have_count(len(choices))
            assert [text.split()[0] for text in shown.all_inner_texts()] == choices
            picked = box.get_by_role("button", name=re.compile(rf"^{choices[-1]} \d+$"))
            picked.click()
            expect(picked).to_have_attribute("aria-pressed", "true")
            page.screenshot(path=str(SCREENSHOTS / f"sites-widget-{name}.png"),
                            clip={"x": 0, "y": 0, "width": 1100, "height": 300})
            # This origin may read its own site's article, not the other site's.
            assert fetch_status(page, f"{live_server.url}/api/v1/articles/{own}/reactions") == 200
            assert fetch_status(
                page, f"{live_server.url}/api/v1/articles/{other}/reactions") == "blocked"
        assert tab.errors == []

    assert live_server.counts(daily) == {"yes": 0, "no": 1}
    assert live_server.counts(feature) == {c: int(c == "👍") for c in EMOJI}
    # A choice of the other site's set is refused, and counts nothing.
    status, minted = live_server.api("POST", "/api/v1/readers")
    assert status == 201
    reader = {"X-Engage-Reader": minted["reader"]}
    for article_id, choice in ((daily, "👍"), (feature, "yes")):
        status, body = live_server.api("PUT", f"/api/v1/articles/{article_id}/reactions/mine",
                                       {"choice": choice}, reader)
        assert status == 422 and list(body["error"]["fields"]) == ["choice"], body
    assert live_server.counts(daily) == {"yes": 0, "no": 1}
    assert live_server.counts(feature) == {c: int(c == "👍") for c in EMOJI}

    # The dashboard with two sites: the admins' list, and the overview's switcher.
    with signed_in(browser, live_server, admin) as staff:
        staff.goto("/dashboard/admin/sites")
        expect(staff.locator(f'tr[data-site="{magazine}"]')).to_contain_text(" ".join(EMOJI))
        shot(staff, "sites-admin.png")
        staff.locator(f'tr[data-site="{magazine}"]').get_by_role("link", name=magazine).click()
        expect(staff.get_by_label("Choices, in display order")).to_have_value(", ".join(EMOJI))
        shot(staff, "sites-admin-edit.png")
        staff.goto("/dashboard")
        switcher = staff.locator("#site-switcher")
        expect(switcher).to_be_visible()
        switcher.get_by_role("link", name=magazine).click()
        expect(switcher.get_by_role("link", name=magazine)).to_have_attribute(
            "aria-current", "true")
        expect(staff.locator(f'a[href="/dashboard/articles/{daily}"]')).to_have_count(0)
        shot(staff, "sites-overview-one-site.png")
