"""Finding an article among 100,000 in the dashboard, in headless chromium: a title word
and a word's beginning, a section and a date filter and the next page, all from the
keyboard, each answered in under 300 ms of server time (the browser's Navigation Timing:
request sent to first byte back), and the results page clean under axe.

The archive is written in pipelines of 4,000 articles (two round trips each): the
store's own upsert script and `articles.index_many`, with the global indexes `write`
keeps. `articles.write` itself takes three round trips per article: 0.5 ms an article
measured, 50 s for 100,000, where this takes 20 to 44 s on a shared two-core machine.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from engage.store import Store, articles, get_store, scripts, tokens
from tests.browser.test_accessibility import AXE_RULES, report
from tests.conftest import make_app
from tests.live_server import serving
from tests.redis_server import RedisServer

SIZE = 100_000
BATCH = 4_000  # the index's read and the writes: a round trip per 2,000 articles
START = datetime(2020, 1, 1, tzinfo=UTC)  # one article a minute: 100,000 are ~69 days
WORDS = ["harbour", "election", "market", "festival", "summit", "weather", "court"]
# Distinct first letters: a section is chosen from the list by typing its first letter.
SECTIONS = ["Business", "Culture", "Diplomacy", "Economy", "Football", "Health",
            "Markets", "Opinion", "Politics", "Science", "Travel", "World"]
ONE = 73_421  # the only article with its title's words
ONE_TITLE = "Lighthouse keeper retires after forty years"
LIMIT_MS = 300.0


def title(n: int) -> str:
    return ONE_TITLE if n == ONE else f"{WORDS[n % 7]} {WORDS[n * 3 % 7]} report {n}"


def section(n: int) -> str:
    return SECTIONS[n % len(SECTIONS)]


def published(n: int) -> datetime:
    return START + timedelta(minutes=n)


def load(store: Store, size: int) -> None:
    keys = store.keys
    # A script called in a pipeline is not loaded on demand: a new Redis has none yet.
    store.redis.script_load(scripts.UPSERT_ARTICLE)
    for first in range(0, size, BATCH):
        pipe = store.redis.pipeline(transaction=False)
        batch = []
        for n in range(first, min(size, first + BATCH)):
            aid, when = f"a{n}", published(n)
            data = {"title": title(n), "url": f"https://news.example.com/{n}",
                    "section": section(n), "tags": [f"t{n % 40}"], "published_at": when}
            # An editor's new article, as articles.write sends it, queued on the pipeline.
            store.scripts["upsert_article"](
                keys=articles.upsert_keys(store, aid),
                args=articles.upsert_args(store, aid, data, "editor", START), client=pipe)
            pipe.zadd(keys.articles, {aid: when.timestamp()})
            pipe.zadd(keys.section(data["section"]), {aid: when.timestamp()})
            batch.append((aid, data))
        pipe.sadd(keys.sections, *SECTIONS)
        articles.index_many(store, pipe, batch)
        pipe.execute()


@dataclass
class Archive:
    url: str
    store: Store
    token: str
    load_seconds: float


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    """Our own Redis and live server, with 100,000 articles and an editor's token; no
    aggregates thread (nothing here is voted on) to share the two cores with."""
    redis = RedisServer(tmp_path_factory.mktemp("archive-redis")).start()
    app = make_app(redis.url, tmp_path_factory.mktemp("archive-data"))
    with app.app_context():
        store = get_store()
        began = time.perf_counter()
        load(store, SIZE)
        loaded = time.perf_counter() - began
        token = tokens.create(store, "editor", "Archive desk")[0]
    try:
        with serving(app) as server:
            yield Archive(f"http://127.0.0.1:{server.server_port}", store, token, loaded)
    finally:
        store.close()
        redis.stop()


def matching(q: str, section_name: str | None = None,
             since: datetime | None = None) -> list[str]:
    """The ids a search must find, newest first, worked out from how the archive was
    written: a title word beginning with `q` (no id or address word here does)."""
    return [f"a{n}" for n in range(SIZE - 1, -1, -1)
            if any(w.casefold().startswith(q) for w in title(n).split())
            and (section_name is None or section(n) == section_name)
            and (since is None or published(n) >= since)]


def server_ms(page: Any, tries: int = 3) -> float:
    """The time from the request sent to the response's first byte, of the navigation
    that made this page; over the limit, the least of up to `tries` loads of it. The
    suite runs beside other work on a small machine (CI runs two suites at once), and
    the least load is the time the server needs rather than the time it waited."""
    def once() -> float:
        return float(page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n.responseStart - n.requestStart; }"))

    best = once()
    for _ in range(tries - 1):
        if best < LIMIT_MS:
            break
        page.reload()
        best = min(best, once())
    return best


def shown(page: Any) -> list[str]:
    return list(page.locator("table.data tbody tr[data-article]").evaluate_all(
        "rows => rows.map(r => r.dataset.article)"))


def caption(page: Any) -> str:
    return str(page.locator("table.data caption").inner_text())


@pytest.mark.slow
@pytest.mark.browser
def test_find_filter_and_page_100000_articles_by_keyboard_in_under_300_ms(
        browser: Any, archive: Archive) -> None:
    context = browser.new_context(base_url=archive.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8000)
    problems: list[str] = []
    timings: dict[str, float] = {}
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console",
                lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.goto("/dashboard")
        assert "/dashboard/signin" in page.url
        page.focus("#token")
        page.keyboard.type(archive.token)
        page.keyboard.press("Enter")
        page.wait_for_url("**/dashboard")

        # A title word: the one article that has it, shown with its title.
        page.focus("#q")
        page.keyboard.type("lighthouse")
        page.keyboard.press("Enter")
        page.wait_for_url("**q=lighthouse**")
        timings["word"] = server_ms(page)
        assert caption(page) == "1 article found, newest first"
        assert shown(page) == [f"a{ONE}"]
        assert page.locator(f'tr[data-article="a{ONE}"] th a').inner_text() == ONE_TITLE

        # A word's beginning: every article with a word that starts so, newest first.
        harbour = matching("harb")
        page.focus("#q")
        page.keyboard.press("Control+A")
        page.keyboard.type("harb")
        page.keyboard.press("Enter")
        page.wait_for_url("**q=harb&**")
        timings["prefix"] = server_ms(page)
        assert caption(page) == f"{len(harbour)} articles found, newest first"
        assert shown(page) == harbour[:50]

        # A section and a first day, chosen and typed in the form, then the next page.
        since = datetime(2020, 2, 1, tzinfo=UTC)
        filtered = matching("harb", "Markets", since)
        assert len(filtered) > 100  # a second page to go to
        page.focus("#q")
        page.keyboard.press("Tab")  # the section list: its first letter chooses
        page.keyboard.press("M")
        assert page.eval_on_selector("#section", "s => s.value") == "Markets"
        page.keyboard.press("Tab")  # tag
        page.keyboard.press("Tab")  # registered by
        page.keyboard.press("Tab")  # from
        page.keyboard.type("2020-02-01")
        page.keyboard.press("Enter")
        page.wait_for_url("**from=2020-02-01**")
        timings["filtered"] = server_ms(page)
        assert "section=Markets" in page.url
        assert caption(page) == f"{len(filtered)} articles found, newest first"
        assert shown(page) == filtered[:50]
        pages = -(-len(filtered) // 50)
        assert page.locator(f"text=Page 1 of {pages}").is_visible()
        page.get_by_role("link", name="CSV").focus()
        page.keyboard.press("Shift+Tab")  # back from the export link: the pager's last
        assert page.evaluate("() => document.activeElement.textContent") == "Next page"
        page.keyboard.press("Enter")
        page.wait_for_url("**page=2**")
        timings["next page"] = server_ms(page)
        assert shown(page) == filtered[50:100]
        assert page.locator(f"text=Page 2 of {pages}").is_visible()

        # The results page, in both colour schemes.
        found = {}
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
            results = Axe().run(page, options=AXE_RULES)
            if results.violations_count:
                found[scheme] = report(results)
        assert not found, found
    finally:
        context.close()
    print(f"\nloaded {SIZE:,} articles in {archive.load_seconds:.1f} s; server ms: "
          + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    assert problems == []
    assert max(timings.values()) < LIMIT_MS, timings


def least_time(call: Any, tries: int = 3) -> tuple[float, Any]:
    """(seconds, answer) of `call`; over the limit, the least of up to `tries` calls
    (as server_ms, for the same reason)."""
    best, answer = float("inf"), None
    for _ in range(tries):
        began = time.perf_counter()
        answer = call()
        best = min(best, time.perf_counter() - began)
        if best < LIMIT_MS / 1000:
            break
    return best, answer


@pytest.mark.slow
def test_the_store_finds_among_100000_articles_in_under_300_ms(archive: Archive) -> None:
    """What the dashboard does not show: a word's beginning shared by the whole archive
    or by 111 id words, an id alone, two words' beginnings with a section; and that the
    vocabulary holds each word once, however many articles use it."""
    store = archive.store
    since = START + timedelta(days=10)
    timings = []
    for q, section_name, after, expected in (
            ("harbour report", "Business", since, len(matching("harbour", "Business", since))),
            ("elec rep", "Diplomacy", None, len(matching("elec", "Diplomacy"))),
            ("rep", None, None, SIZE - 1),  # all but the lighthouse keeper's
            ("a123", None, None, 111)):  # ids a123, a1230 to a1239, a12300 to a12399
        seconds, (total, ids) = least_time(functools.partial(
            articles.find, store, q, section=section_name, since=after, limit=50))
        timings.append(seconds)
        assert total == expected and len(ids) == 50, (q, total, expected)
    seconds, (_, ids) = least_time(lambda: articles.find(store, "99999"))
    assert ids == ["a99999"]
    timings.append(seconds)
    print(f"\nstore ms: {', '.join(f'{t * 1000:.1f}' for t in timings)}")
    assert max(timings) < LIMIT_MS / 1000, timings
    assert store.redis.zcard(store.keys.find("vocab")) < 3 * SIZE + 10

