"""The API reference page in a real browser: Swagger UI from local files, under the CSP."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, LiveServer, Tab

pytestmark = pytest.mark.browser

METHODS = {"get", "put", "post", "patch", "delete"}


def test_reference_renders_every_operation_with_its_token_and_enums(
    tab: Tab, live_server: LiveServer
) -> None:
    status, spec = live_server.api("GET", "/api/v1/openapi.json")
    assert status == 200
    operations = [(operation["tags"][0], operation["operationId"])
                  for ops in spec["paths"].values()
                  for method, operation in ops.items() if method in METHODS]
    page = tab.page
    served = []
    page.on("request", lambda request: served.append(request.url))
    page.goto("/api/docs")
    expect(page.locator(".opblock")).to_have_count(len(operations))
    for tag, operation_id in operations:
        block = page.locator(f"#operations-{tag}-{operation_id}")
        expect(block).to_be_attached()
        expect(block.locator(".opblock-summary-operation-id")).to_have_text(operation_id)

    # Which token an operation needs: the lock of its schemes and the "Token:" line.
    stats = page.locator("#operations-stats-listArticleStats")
    stats.locator(".opblock-summary-control").click()
    expect(stats.get_by_text("Token: editor or admin")).to_be_visible()
    expect(stats.locator(".authorization__btn")).to_be_visible()
    # Its `sort` parameter is an enum: Swagger UI lists the values.
    expect(stats.locator("select option", has_text="trending")).to_be_attached()
    admin_only = page.locator("#operations-polls-deletePoll")
    admin_only.locator(".opblock-summary-control").click()
    expect(admin_only.get_by_text("An editor token gets 403")).to_be_visible()
    reactions = page.locator("#operations-reactions-getReactions")
    reactions.locator(".opblock-summary-control").click()
    for name in ("X-Engage-Reader", "If-None-Match"):
        expect(reactions.locator(f'[data-param-name="{name}"]')).to_be_visible()
    admin_only.locator(".opblock-summary-control").click()
    stats.locator(".opblock-summary-control").click()

    assert all(url.startswith(live_server.url) for url in served), served
    assert tab.console == [] and tab.errors == []  # a CSP refusal is a console error
    page.screenshot(path=str(SCREENSHOTS / "api-docs.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": 1100, "height": 1400})
