"""Browser fixtures: the real app on a live port, and headless Debian chromium.

The live server is werkzeug's threaded server in a background thread, against its
own redis-server (so other tests' per-test flushes cannot touch it), with the demo
fixtures loaded and an editor token ready.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer

from engage import seeds
from engage.store import Store, get_store, tokens
from engage.worker import start_aggregates
from tests.conftest import make_app
from tests.live_server import call_json, serving
from tests.redis_server import RedisServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
READER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/120.0.0.0 Safari/537.36")


@dataclass
class LiveServer:
    url: str
    app: Flask
    store: Store
    editor: dict[str, str]
    server: BaseWSGIServer
    publisher: str  # another origin (allowlisted) serving publisher pages
    pages: dict[str, tuple[str, str]] = field(default_factory=dict)

    def publish(self, path: str, html: str, csp: str = "") -> str:
        """Serve `html` at `path` on the publisher origin (with a CSP if given)."""
        self.pages[path] = (html, csp)
        return self.publisher + path

    def api(self, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return call_json(self.url + path, method, body,
                         {"User-Agent": "engage-tests", **(headers or {})})

    def article(self, title: str = "A test article", section: str = "Testing", **extra: Any) -> str:
        article_id = "t-" + uuid.uuid4().hex[:10]
        status, body = self.api("PUT", f"/api/v1/articles/{article_id}", {
            "title": title, "url": f"https://news.example.com/{article_id}",
            "section": section, "published_at": "2026-01-08T09:00:00Z", **extra,
        }, self.editor)
        assert status == 201, body
        return article_id

    def links(self, article_id: str, items: list[dict[str, str]]) -> list[dict[str, Any]]:
        status, body = self.api("PUT", f"/api/v1/articles/{article_id}/links", items,
                                self.editor)
        assert status == 200, body
        return list(body["links"])

    def counts(self, article_id: str) -> dict[str, int]:
        status, body = self.api("GET", f"/api/v1/articles/{article_id}/reactions")
        assert status == 200, body
        return dict(body["counts"])

    def linkstats(self, article_id: str) -> dict[str, str]:
        with self.app.app_context():
            return dict(self.store.redis.hgetall(self.store.keys.article_linkstats(article_id)))


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    pages: dict[str, tuple[str, str]] = {}

    def publisher_site(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        html, csp = pages.get(environ.get("PATH_INFO", ""), ("", ""))
        headers = [("Content-Type", "text/html; charset=utf-8")]
        if csp:
            headers.append(("Content-Security-Policy", csp))
        start_response("200 OK" if html else "404 Not Found", headers)
        return [(html or "not found").encode()]

    with serving(publisher_site) as site:
        publisher = f"http://127.0.0.1:{site.server_port}"
        redis = RedisServer(tmp_path_factory.mktemp("live-redis")).start()
        app = make_app(
            redis.url, tmp_path_factory.mktemp("live-data"),
            DEMO=True, ALLOWED_ORIGINS=[publisher],
            THROTTLE_VOTES=100000, READER_MINT_LIMIT="100000 per minute",
        )
        with app.app_context():
            store = get_store()
            seeds.load(store, app.config["SEEDS_DIR"])
            editor = tokens.create(store, "editor", "browser tests")[0]
        # The aggregates thread, as `engage serve` runs it: rankings and the live view.
        aggregates_thread, aggregates_stop = start_aggregates(store)
        try:
            with serving(app) as server:
                wait_caught_up(store)
                yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, store,
                                 {"Authorization": f"Bearer {editor}"}, server, publisher,
                                 pages)
        finally:
            aggregates_stop.set()
            aggregates_thread.join(timeout=5)
            store.close()
            redis.stop()


def wait_caught_up(store: Any, timeout: float = 30.0) -> None:
    """Until the aggregates have applied every stream entry written so far."""
    import time

    from engage.store import events

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = store.redis.hgetall(store.keys.agg("seen"))
        if all(seen.get(key) == (store.redis.xrevrange(key, count=1) or [("", {})])[0][0]
               for key in events.stream_keys(store)):
            return
        time.sleep(0.2)
    raise AssertionError("the aggregates did not catch up")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"chromium is not installed at {CHROMIUM} (CI installs it in .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Tab:
    """A page in a fresh context (fresh localStorage) and what went wrong on it."""

    page: Any
    errors: list[str]
    console: list[str]
    dialogs: list[str]
    api_requests: list[str]


@pytest.fixture
def tab(browser: Any, live_server: LiveServer) -> Iterator[Tab]:
    # A reader's browser: engage does not count link clicks from headless ones.
    context = browser.new_context(base_url=live_server.url, user_agent=READER_AGENT,
                                  viewport={"width": 1100, "height": 900})
    context.set_default_timeout(5000)
    page = context.new_page()
    result = Tab(page, [], [], [], [])
    page.on("pageerror", lambda exc: result.errors.append(str(exc)))
    page.on("console", lambda msg: result.console.append(msg.text) if msg.type == "error" else None)

    def on_dialog(dialog: Any) -> None:
        result.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda req: result.api_requests.append(f"{req.method} {req.url}")
            if "/api/v1/" in req.url else None)
    try:
        yield result
    finally:
        context.close()
