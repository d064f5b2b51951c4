"""An article engage has never seen registers itself from its publisher's page, in
Chromium: the widget works within 10 s of the first load, and the dashboard lists the
article with the page's title, section and date. Pages that do not verify show why."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from engage.pages import start_pages
from engage.store import Store, articles, get_store, registry, tokens
from engage.worker import start_aggregates
from tests.browser.conftest import READER_AGENT
from tests.conftest import make_app
from tests.live_server import serving
from tests.publisher import Publisher, article_page
from tests.redis_server import RedisServer

pytestmark = pytest.mark.browser


@dataclass
class Newsroom:
    engage: str
    publisher: Publisher
    store: Store
    editor: str


@pytest.fixture(scope="module")
def newsroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newsroom]:
    publisher = Publisher().start()
    redis = RedisServer(tmp_path_factory.mktemp("reg-redis")).start()
    app = make_app(redis.url, tmp_path_factory.mktemp("reg-data"),
                   ALLOWED_ORIGINS=[publisher.origin], FETCH_PRIVATE_NETWORKS=["127.0.0.0/8"],
                   FETCH_MAX_BYTES=1024 * 1024, FETCH_TIMEOUT=2.0, FETCH_HOST_INTERVAL=0.0)
    with app.app_context():
        store = get_store()
        editor = tokens.create(store, "editor", "registration tests")[0]
    # As `engage serve` runs them: the aggregates (the dashboard's list) and the pages.
    aggregates_thread, stop = start_aggregates(store)
    pages_thread, _ = start_pages(store, stop)
    try:
        with serving(app) as server:
            yield Newsroom(f"http://127.0.0.1:{server.server_port}", publisher, store, editor)
    finally:
        stop.set()
        aggregates_thread.join(timeout=5)
        pages_thread.join(timeout=5)
        store.close()
        redis.stop()
        publisher.stop()


@pytest.fixture
def reader_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(user_agent=READER_AGENT)
    context.set_default_timeout(5000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == []


def publish(newsroom: Newsroom, path: str, article_id: str | None, title: str,
            **meta: Any) -> str:
    newsroom.publisher.pages[path] = article_page(
        article_id, title, widget_src=f"{newsroom.engage}/widget.js",
        api=newsroom.engage, **meta)
    return newsroom.publisher.url(path)


def test_a_new_article_works_within_ten_seconds_and_is_listed(
        reader_page: Any, newsroom: Newsroom) -> None:
    page = reader_page
    url = publish(newsroom, "/world/harbour-reopens", "harbour-reopens",
                  "The harbour reopens after the storm", section="World",
                  published="2026-03-04T07:15:00Z", tags=("Weather",))
    assert articles.get(newsroom.store, "harbour-reopens") is None
    started = time.monotonic()
    page.goto(url)
    yes = page.locator('[data-engage-article="harbour-reopens"]').get_by_role(
        "button", name=re.compile(r"^Yes \d+$"))
    expect(yes).to_be_visible(timeout=10_000)
    elapsed = time.monotonic() - started
    print(f"widget working {elapsed:.1f} s after the first load")
    assert elapsed < 10
    yes.click()
    expect(yes).to_have_attribute("aria-pressed", "true")
    expect(yes.locator(".n")).to_have_text("1")

    dashboard = page.context.new_page()
    dashboard.goto(f"{newsroom.engage}/dashboard")
    dashboard.fill("#token", newsroom.editor)
    dashboard.click("button[type=submit]")
    dashboard.wait_for_url("**/dashboard")
    row = dashboard.locator('tr[data-article="harbour-reopens"]')
    for _ in range(20):  # the list comes from the aggregates, a second or so behind
        if row.count():
            break
        time.sleep(0.25)
        dashboard.reload()
    expect(row).to_contain_text("The harbour reopens after the storm")
    expect(row).to_contain_text("World")
    expect(row).to_contain_text("from its page")
    row.get_by_role("link").click()
    expect(dashboard.locator("main, body").first).to_contain_text("04 Mar 2026 07:15 UTC")


@pytest.mark.parametrize(("path", "article_id", "reason"), [
    ("/no-id", None, "no_id"),
    ("/huge?mb=20", "huge-1", "size"),
    ("/slow?s=30", "slow-1", "timeout"),
])
def test_pages_that_do_not_verify_show_why(reader_page: Any, newsroom: Newsroom, path: str,
                                          article_id: str | None, reason: str) -> None:
    # The reader's page carries the widget for an id; the page engage fetches (the
    # canonical address) is the one that fails.
    wanted = article_id or "no-id-1"
    publish(newsroom, "/no-id", None, "A page without the widget")
    canonical = newsroom.publisher.url(path)
    publish(newsroom, f"/reader/{wanted}", wanted, "A reader's page", canonical=canonical)
    reader_page.goto(newsroom.publisher.url(f"/reader/{wanted}"))
    deadline = time.monotonic() + 8
    listed: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not listed:
        listed = [f for f in registry.failures(newsroom.store, "default") if f["key"] == wanted]
        time.sleep(0.2)
    assert [f["reason"] for f in listed] == [reason]
    assert articles.get(newsroom.store, wanted) is None
    # The widget shows nothing for it.
    assert reader_page.locator(f'[data-engage-article="{wanted}"]').evaluate(
        "el => el.shadowRoot.textContent") == ""
