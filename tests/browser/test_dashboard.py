"""The dashboard in headless chromium: sign in, rankings, article page, live view, sign out.

Writes docs/screenshots/dashboard-overview.png, dashboard-article.png and
dashboard-refused.png.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from engage import seeds
from engage.errors import Throttled
from engage.store import Store, get_store, links, polls, reactions, tokens
from engage.worker import start_aggregates
from tests.browser.conftest import wait_caught_up
from tests.conftest import make_app
from tests.live_server import call_json, serving
from tests.redis_server import RedisServer

pytestmark = pytest.mark.browser

DEMO = "korea-china-reset"
SMALL = "won-steadies-brief"
SEEDED = ["korea-china-reset", "yellow-sea-buoys-explainer", "k-content-exports-2026",
          "thaad-ten-years-on"]


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class LiveServer:
    url: str
    app: Flask
    store: Store
    editor: dict[str, str]

    def api(self, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return call_json(self.url + path, method, body, headers)


@pytest.fixture(scope="session")
def dash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Our own live server (own Redis): the demo seeds plus two days of earlier traffic,
    so the charts and the screenshots show a realistic history. Lives as long as the
    session."""
    redis = RedisServer(tmp_path_factory.mktemp("dash-redis")).start()
    app = make_app(redis.url, tmp_path_factory.mktemp("dash-data"), DEMO=True,
                   THROTTLE_VOTES=100000, READER_MINT_LIMIT="100000 per minute")
    with app.app_context():
        store = get_store()
        seeds.load(store, app.config["SEEDS_DIR"])
        add_history(store)
        add_small_sample(store)
        editor = tokens.create(store, "editor", "Night desk")[0]
    # The aggregates thread, as `engage serve` runs it: rankings and the live view.
    aggregates_thread, aggregates_stop = start_aggregates(store)
    try:
        with serving(app) as server:
            wait_caught_up(store)
            yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, store,
                             {"Authorization": f"Bearer {editor}"})
    finally:
        aggregates_stop.set()
        aggregates_thread.join(timeout=5)
        store.close()
        redis.stop()


def add_history(store: Any) -> None:
    """Votes, poll votes and link traffic spread over the last 40 hours, deterministic."""
    rng = random.Random(5)
    now = datetime.now(UTC)
    approval = {SEEDED[0]: 0.8, SEEDED[1]: 0.9, SEEDED[2]: 0.72, SEEDED[3]: 0.4}
    reasons = ["outdated", "inaccurate", "biased", "unclear", "not_relevant"]
    poll = polls.get(store, "korea-china-2026")
    assert poll is not None
    options = [o["id"] for o in poll.options]
    curated = links.curated(store, DEMO)
    reader = 0
    try:
        for back in range(40, 0, -1):
            when = now - timedelta(hours=back, minutes=rng.randint(0, 50))
            store.now = lambda when=when: when
            daytime = 1.0 + math.sin((when.hour - 6) / 24 * 2 * math.pi)
            for aid, share in approval.items():
                for _ in range(int(rng.random() * 4 * daytime)):
                    reader += 1
                    yes = rng.random() < share
                    reason = rng.choice(reasons[:3] if rng.random() < 0.7 else reasons)
                    reactions.vote(store, aid, f"hist-{reader}", f"addr-{reader}",
                                   "yes" if yes else "no", None if yes else reason)
            for _ in range(int(rng.random() * 3 * daytime)):
                reader += 1
                choice = options[min(2, int(rng.random() * rng.random() * 3.5))]
                polls.vote(store, "korea-china-2026", f"hist-{reader}", f"addr-{reader}",
                           [choice], now=when)
            for visit in range(int(3 * daytime) + 1):
                visitor = f"addr-{back}-{visit}"
                links.impressions(store, DEMO, visitor, [link["id"] for link in curated])
                for index, link in enumerate(curated):
                    if rng.random() < (0.3 if index == 0 else 0.12):
                        links.click(store, link["id"], visitor)
            if back in (30, 9, 8, 3):
                add_stuffing(store, curated[0]["id"], rng, f"addr-stuffer-{back}")
    finally:
        del store.now


def add_stuffing(store: Any, link_id: str, rng: random.Random, address: str) -> None:
    """Someone stuffing the demo article: many readers from one address (the throttle
    stops them), repeated votes and clicks, bots, prefetches."""
    limit = store.config["THROTTLE_VOTES"]
    store.config["THROTTLE_VOTES"] = 10  # the live server's is raised for other tests
    try:
        for n in range(rng.randint(12, 40)):
            with contextlib.suppress(Throttled):
                reactions.vote(store, DEMO, f"{address}-{n}", address, "yes")
    finally:
        store.config["THROTTLE_VOTES"] = limit
    reactions.vote(store, DEMO, "stuffer", "addr-stuffer", "yes")
    for _ in range(rng.randint(5, 40)):
        reactions.vote(store, DEMO, "stuffer", "addr-stuffer", "yes")
    for _ in range(rng.randint(20, 200)):
        links.click(store, link_id, "addr-stuffer")
    for why, most in ((links.NOT_HUMAN, 60), (links.PREFETCH, 15)):
        for _ in range(rng.randint(1, most)):
            links.click(store, link_id, "addr-stuffer", why)
    for _ in range(rng.randint(12, 30)):
        links.impressions(store, DEMO, "addr-stuffer", [link_id])


def add_small_sample(store: Any) -> None:
    """A perfect score on five votes: it must not outrank well-liked, much-voted stories."""
    from engage import schemas
    from engage.store import articles

    articles.upsert(store, SMALL, schemas.ArticleInSchema().load({
        "title": "Markets brief: the won steadies after the rate decision",
        "url": "https://news.example.com/business/won-steadies", "section": "Business",
        "published_at": "2026-01-09T07:30:00Z"}))
    for index in range(5):
        reactions.vote(store, SMALL, f"small-{index}", f"addr-small-{index}", "yes")


@pytest.fixture
def desk(browser: Any, dash_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (no cookies) that fails the test on any script error."""
    context = browser.new_context(base_url=dash_server.url,
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert problems == []


def editor_token(live_server: LiveServer) -> str:
    return live_server.editor["Authorization"].split(" ", 1)[1]


def sign_in(page: Any, live_server: LiveServer) -> None:
    page.goto("/dashboard")
    assert "/dashboard/signin" in page.url
    page.fill("#token", editor_token(live_server))
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard")


def test_sign_in_rank_article_live_sign_out(desk: Any, dash_server: LiveServer) -> None:
    page, live_server = desk, dash_server
    sign_in(page, live_server)

    # the seeded articles, ranked as the API ranks them (Wilson, not raw share)
    status, api = live_server.api("GET", "/api/v1/stats/articles?sort=approval&limit=100",
                                  headers=live_server.editor)
    assert status == 200
    expected = [a["id"] for a in api["articles"] if a["id"] in SEEDED + [SMALL]]
    rows = page.locator("table.data tbody tr[data-article]")
    shown = [r for r in rows.evaluate_all("rows => rows.map(r => r.dataset.article)")
             if r in SEEDED + [SMALL]]
    assert shown == expected
    ranked = [r for r in rows.evaluate_all("rows => rows.map(r => r.dataset.article)")]
    assert ranked.index(SMALL) > ranked.index(DEMO)  # 5 of 5 below ~80% of many
    best = api["articles"][0]
    assert page.locator("#top-approved li").first.inner_text().startswith(best["title"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-overview.png"), full_page=True)

    # the demo article: chart drawn, link CTR shown
    page.click(f"table.data a[href='/dashboard/articles/{DEMO}']")
    page.wait_for_url(f"**/dashboard/articles/{DEMO}")
    chart = page.locator("#reactions-chart svg")
    assert chart.is_visible()
    assert chart.locator("rect").count() >= 2
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 200
    policy = page.locator("#links-table tr", has_text="Policy Link")
    cells = policy.locator("td").all_inner_texts()
    with live_server.app.app_context():
        figures = {s["title"]: s for s in links.stats(live_server.store, DEMO)}
    ctr = figures["Policy Link"]["ctr"]
    assert cells == [str(figures["Policy Link"]["impressions"]),
                     str(figures["Policy Link"]["clicks"]), f"{ctr * 100:.1f}%"]
    page.screenshot(path=str(SCREENSHOTS / "dashboard-article.png"), full_page=True)

    # live: a vote cast elsewhere shows up without a reload
    page.click("nav.nav >> text=Live")
    page.wait_for_url("**/dashboard/live")
    page.wait_for_selector("#live-feed li")
    page.evaluate("window.__stillSamePage = true")
    total_before = int(page.inner_text("#live-total"))
    status, minted = live_server.api("POST", "/api/v1/readers")
    assert status == 201
    status, _ = live_server.api(
        "PUT", "/api/v1/articles/thaad-ten-years-on/reactions/mine",
        {"choice": "no", "reason": "outdated"}, {"X-Engage-Reader": minted["reader"]},
    )
    assert status == 200
    page.wait_for_function(
        "before => Number(document.getElementById('live-total').textContent) > before",
        arg=total_before, timeout=10000,
    )
    newest = page.locator("#live-feed li").first.inner_text()
    assert "THAAD, ten years on" in newest and "voted no (outdated)" in newest
    assert page.evaluate("window.__stillSamePage") is True
    # Poll answers read by the question; impressions are counted, never listed; the
    # filter hides a kind of event.
    feed = page.locator("#live-feed li")
    assert "saw related links" not in " ".join(feed.all_inner_texts())
    assert not any(" poll vote p" in t for t in feed.all_inner_texts())
    page.get_by_label("Reactions").uncheck()
    assert not any("voted" in t for t in feed.all_inner_texts())
    page.get_by_label("Reactions").check()
    assert "voted no (outdated)" in feed.first.inner_text()

    # a dashboard action without the CSRF token is refused, with the session cookie sent
    refused = page.request.post(f"{live_server.url}/dashboard/polls/korea-china-2026/status",
                                form={"status": "closed"})
    assert refused.status == 403
    status, poll = live_server.api("GET", "/api/v1/polls/korea-china-2026",
                                   headers=live_server.editor)
    assert poll["status"] == "open"

    # sign out: back to the form, and the dashboard is closed again
    page.click("form.signout button")
    page.wait_for_url("**/dashboard/signin")
    page.goto("/dashboard/live")
    assert "/dashboard/signin" in page.url


def test_phone_width_pages(desk: Any, dash_server: LiveServer) -> None:
    page = desk
    page.set_viewport_size({"width": 375, "height": 800})
    sign_in(page, dash_server)
    for path in ("/dashboard", f"/dashboard/articles/{DEMO}", "/dashboard/polls",
                 "/dashboard/polls/korea-china-2026", "/dashboard/live"):
        page.goto(path)
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => "
            "e.getBoundingClientRect().right > 376).map(e => e.tagName + '.' + e.className)"
        )
        assert wide == [], (path, wide[:5])
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
        if os.environ.get("ENGAGE_PHONE_SHOTS"):
            page.screenshot(path=os.path.join(os.environ["ENGAGE_PHONE_SHOTS"],
                                              path.strip("/").replace("/", "_") + ".png"),
                            full_page=True)


def test_article_page_shows_refused_activity(desk: Any, dash_server: LiveServer) -> None:
    """The hours in which the demo article was stuffed, as the stats API reports them."""
    page = desk
    sign_in(page, dash_server)
    page.goto(f"/dashboard/articles/{DEMO}")
    status, series = dash_server.api("GET", f"/api/v1/articles/{DEMO}/stats?bucket=hour",
                                     headers=dash_server.editor)
    assert status == 200
    stuffed = [p for p in series["points"] if any(p["refused"].values())]
    assert len(stuffed) >= 3
    rows = page.locator("#refused-table tbody tr")
    assert rows.count() == len(stuffed)
    r = stuffed[-1]["refused"]
    cells = rows.first.locator("td").evaluate_all("cells => cells.map(c => c.dataset.n)")
    assert cells == [str(n) for n in (
        r["votes_throttled"] + r["poll_votes_throttled"] + r["votes_duplicate"]
        + r["poll_votes_duplicate"],
        r["clicks_duplicate"] + r["clicks_throttled"] + r["clicks_bot"] + r["clicks_prefetch"],
        r["impressions_over_cap"])]
    page.locator("#refused").scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-refused.png"), full_page=True)


def test_link_and_poll_history_charts_and_their_tables(desk: Any,
                                                      dash_server: LiveServer) -> None:
    """The related links' clicks and a poll's answers over time, as the store keeps
    them; each chart's table opened with the keyboard."""
    from engage.store import stats
    from engage.timerange import resolve

    page = desk
    sign_in(page, dash_server)
    page.goto(f"/dashboard/articles/{DEMO}")
    status, series = dash_server.api("GET", f"/api/v1/articles/{DEMO}/stats?bucket=hour",
                                     headers=dash_server.editor)
    assert status == 200
    clicked = [c for p in series["points"] for c in p["links"].values()]
    chart = page.locator("#link-history svg")
    assert chart.is_visible() and chart.locator("rect").count() == sum(
        1 for p in series["points"] for c in p["links"].values() if c["clicks"])
    caption = page.locator("#link-history figcaption").inner_text()
    assert f"{sum(p['clicks'] for p in series['points'])} clicks of " \
           f"{sum(p['impressions'] for p in series['points'])} impressions" in caption
    table = page.locator("#link-history-table")
    assert not table.is_visible()
    page.locator("#link-history summary").focus()
    page.keyboard.press("Enter")
    assert table.is_visible() and table.locator("tbody tr").count() == len(clicked)
    page.locator("#link-history").screenshot(
        path=str(SCREENSHOTS / "dashboard-link-history.png"))

    page.get_by_role("link", name="Will Seoul and Beijing fully restore ties in 2026?").click()
    page.wait_for_url("**/dashboard/polls/korea-china-2026")
    with dash_server.app.app_context():
        store = dash_server.store
        poll = polls.get(store, "korea-china-2026")
        assert poll is not None
        window = resolve(None, None, now=store.now(), bucket="hour",
                         hour_days=int(store.config["HOUR_BUCKET_DAYS"]),
                         day_days=int(store.config["DAY_BUCKET_DAYS"]))
        answers = stats.poll_series(store, poll, window)["points"]
    chart = page.locator("#poll-history svg")
    assert chart.is_visible() and chart.locator("rect").count() == sum(
        1 for p in answers for n in p["added"].values() if n)
    page.locator("#poll-history summary").focus()
    page.keyboard.press("Enter")
    rows = page.locator("#poll-history-table tbody tr")
    assert rows.count() == sum(1 for p in answers for option in p["added"]
                               if p["added"][option] or p["removed"][option])
    page.screenshot(path=str(SCREENSHOTS / "dashboard-poll.png"), full_page=True)


def test_poll_close_time_shown_in_the_editors_time_with_utc(
        browser: Any, dash_server: LiveServer) -> None:
    poll = polls.create(dash_server.store, {
        "question": "Shown in Seoul time?", "options": ["A", "B"], "article": DEMO,
        "multiple": False, "closes_at": datetime(2099, 12, 7, 17, 0, tzinfo=UTC)})
    context = browser.new_context(base_url=dash_server.url, timezone_id="Asia/Seoul",
                                  locale="en-US")
    try:
        page = context.new_page()
        sign_in(page, dash_server)
        page.goto("/dashboard/polls")
        shown = page.locator(f'[data-poll="{poll.id}"] time').text_content()
        assert shown == "Dec 8, 2099, 2:00 AM your time (07 Dec 2099 17:00 UTC)"
    finally:
        context.close()
        polls.delete(dash_server.store, poll.id)


def test_find_filter_and_page_articles_by_keyboard(desk: Any, dash_server: LiveServer) -> None:
    from engage import schemas
    from engage.store import articles

    for n in range(55):
        articles.upsert(dash_server.store, f"kbd-brief-{n:02d}", schemas.ArticleInSchema().load({
            "title": f"Keyboard brief {n}", "url": f"https://news.example.com/kbd/{n}",
            "section": "Business", "published_at": f"2026-02-{1 + n % 28:02d}T08:00:00Z"}))
    page = desk
    sign_in(page, dash_server)
    page.focus("#q")
    page.keyboard.type("keyboard brief")
    page.keyboard.press("Tab")  # the section list: chosen with the keyboard
    page.keyboard.press("B")
    assert page.eval_on_selector("#section", "s => s.value") == "Business"
    page.keyboard.press("Tab")  # tag
    page.keyboard.press("Tab")  # who registered it
    page.keyboard.press("Tab")  # from
    page.keyboard.type("2026-02-01")
    assert page.eval_on_selector("#from", "e => e.value") == "2026-02-01"
    page.keyboard.press("Enter")
    page.wait_for_url("**q=keyboard+brief**")
    expect_caption = page.locator("table.data caption").inner_text()
    assert expect_caption == "55 articles found, newest first"
    assert page.locator("text=Page 1 of 2").is_visible()
    page.get_by_role("link", name="Next page").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**page=2**")
    assert page.locator("tr[data-article^='kbd-brief-']").count() == 5
    page.keyboard.press("Tab")
    page.focus("#to")
    page.keyboard.type("2026-02-01")
    page.keyboard.press("Enter")
    page.wait_for_url("**to=2026-02-01**")
    # Published on 1 February only: briefs 0 and 28 (page 1 again: a new search)
    assert sorted(page.locator("tr[data-article^='kbd-brief-']").evaluate_all(
        "rows => rows.map(r => r.dataset.article)")) == ["kbd-brief-00", "kbd-brief-28"]
