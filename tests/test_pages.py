"""Articles that register themselves from their publisher's page: the widget's read
queues an unknown id, the worker's verifier fetches the page (a publisher on loopback,
tests/publisher.py) and registers it, or lists why not; made-up ids stay bounded."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage import metrics
from engage.fetching import Fetched
from engage.pages import Verifier, found_on, read_page
from engage.store import articles, budgets, registry
from tests.conftest import ARTICLE
from tests.desk import Desk
from tests.dns_server import DnsServer
from tests.publisher import Publisher, article_page

pytestmark = pytest.mark.usefixtures("loopback_only")

BOUND = 40
EDITOR_FORM = {"id": "ed-2", "title": "Written by hand", "url": "https://news.example.com/ed-2",
               "section": "Desk", "published_at": "2026-03-01T09:30", "tz": "UTC", "tags": ""}
INTRANET = "http://intranet.engage.test"  # on the site's origins, resolves to 10.0.0.7


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    site = Publisher().start()
    yield site
    site.stop()


@pytest.fixture
def app_config(publisher: Publisher) -> dict[str, Any]:
    return {"ALLOWED_ORIGINS": [publisher.origin, INTRANET],
            "FETCH_PRIVATE_NETWORKS": ["127.0.0.0/8"],
            "FETCH_MAX_BYTES": 1024 * 1024, "FETCH_TIMEOUT": 2.0, "FETCH_HOST_INTERVAL": 0.0,
            "PENDING_PER_SITE": BOUND, "UNVERIFIED_KEPT": 20}


def key_count(store: Any, but: tuple[str, ...] = ()) -> int:
    """Every key in Redis (every node of a cluster), but those of the `but` families."""
    skip = tuple(f"{store.keys.prefix}:{family}" for family in but)
    return sum(1 for key in store.redis.scan_iter(count=1000) if not key.startswith(skip))


def failures_counted(reason: str) -> float:
    value = metrics.worker_registry().get_sample_value(
        "engage_page_verification_failures_total", {"reason": reason})
    return float(value or 0.0)


def read(client: FlaskClient, publisher: Publisher, article_id: str, url: str,
         origin: str | None = None) -> Any:
    return client.get("/api/v1/widget", query_string={"article": article_id, "url": url},
                      headers={"Origin": origin or publisher.origin})


def test_an_unknown_article_registers_itself_from_its_page(
        client: FlaskClient, publisher: Publisher, store: Any) -> None:
    url = publisher.url("/world/new-1")
    publisher.pages["/world/new-1"] = article_page(
        "new-1", "Ports reopen after the storm", section="World",
        published="2026-03-01T08:30:00+09:00", tags=("Weather", "Shipping"),
        canonical=url + "?ref=canonical")
    first = read(client, publisher, "new-1", url)
    assert first.status_code == 200
    assert first.json["unknown"] == ["new-1"] and first.json["articles"] == {}
    # Caches ask again while it is unknown, so the widget's next look is not a stale copy.
    assert first.headers["Cache-Control"] == "public, no-cache"
    assert publisher.requests == []  # nothing fetched on the request path
    assert registry.pending_count(store, "default") == 1

    assert Verifier(store).step() == 1
    article = articles.get(store, "new-1")
    assert article is not None
    assert (article["title"], article["section"], article["published_at"], article["tags"],
            article["url"], article["source"]) == (
        "Ports reopen after the storm", "World", "2026-02-28T23:30:00+00:00",
        ["Weather", "Shipping"], url + "?ref=canonical", "page")
    assert article["verified_at"] is not None
    assert registry.pending_count(store, "default") == 0
    answer = read(client, publisher, "new-1", url)
    assert answer.json["unknown"] == [] and answer.json["articles"]["new-1"]["total"] == 0
    assert answer.headers["Cache-Control"].startswith("public, max-age=")
    # Votes are taken now that it is registered.
    reader = client.post("/api/v1/readers").json["reader"]
    vote = client.put("/api/v1/articles/new-1/reactions/mine", json={"choice": "yes"},
                      headers={"X-Engage-Reader": reader})
    assert vote.status_code == 200, vote.json


def test_until_registered_no_vote_is_taken(client: FlaskClient, publisher: Publisher,
                                           store: Any) -> None:
    read(client, publisher, "new-2", publisher.url("/new-2"))
    reader = client.post("/api/v1/readers").json["reader"]
    vote = client.put("/api/v1/articles/new-2/reactions/mine", json={"choice": "yes"},
                      headers={"X-Engage-Reader": reader})
    assert vote.status_code == 404 and vote.json["error"]["code"] == "unknown_article"
    assert store.redis.exists(store.keys.article("new-2")) == 0


@pytest.mark.parametrize(("path", "reason"), [
    ("/no-id", "no_id"),
    ("/two-ids", "other_id"),
    ("/redirect?to=http://elsewhere.engage.test/x", "origin"),
    ("/redirect?to=http://10.1.2.3/x", "origin"),
    (f"/redirect?to={INTRANET}/x", "private"),
    ("/huge?mb=20", "size"),
    ("/slow?s=30", "timeout"),
    ("/missing", "status"),
])
def test_pages_that_do_not_verify_register_nothing_and_say_why(
        client: FlaskClient, publisher: Publisher, store: Any, name_server: DnsServer,
        path: str, reason: str) -> None:
    name_server.set("intranet.engage.test", "10.0.0.7")
    publisher.pages["/no-id"] = article_page(None, "No widget here")
    publisher.pages["/two-ids"] = (article_page("bad-1", "Listing")
                                   + '<div data-engage-article="other"></div>')
    publisher.pages["/slow"] = article_page("bad-1", "Slow")
    read(client, publisher, "bad-1", publisher.url(path))
    failures_before = failures_counted(reason)
    started = time.monotonic()
    assert Verifier(store).step() == 1
    assert time.monotonic() - started < 8  # the limits end it, not the 30 s server
    assert store.redis.exists(store.keys.article("bad-1")) == 0
    listed = registry.failures(store, "default")
    assert [(f["key"], f["reason"]) for f in listed] == [("bad-1", reason)]
    assert listed[0]["url"] == publisher.url(path)
    assert reason in metrics.PAGE_FAILURES
    assert failures_counted(reason) == failures_before + 1
    # Not fetched again on the next reader's visit: the failure holds it for a while.
    read(client, publisher, "bad-1", publisher.url(path))
    assert registry.pending_count(store, "default") == 0


def test_a_page_of_another_origin_is_listed_not_queued(
        client: FlaskClient, publisher: Publisher, store: Any) -> None:
    elsewhere = "https://elsewhere.example/news/x-1"
    read(client, publisher, "x-1", elsewhere)
    assert registry.pending_count(store, "default") == 0
    listed = registry.failures(store, "default")
    assert [(f["key"], f["reason"]) for f in listed] == [(elsewhere, "origin")]
    # Keyed by the address: the id itself may still be verified from its own page.
    publisher.pages["/x-1"] = article_page("x-1", "The real one")
    read(client, publisher, "x-1", publisher.url("/x-1"))
    Verifier(store).step()
    assert articles.get(store, "x-1")["title"] == "The real one"  # type: ignore[index]


def test_a_read_from_an_origin_of_no_site_changes_nothing(
        client: FlaskClient, publisher: Publisher, store: Any) -> None:
    before = key_count(store)
    read(client, publisher, "y-1", "https://elsewhere.example/y-1", origin="https://evil.example")
    read(client, publisher, "y-2", publisher.url("/y-2"), origin="https://evil.example")
    assert key_count(store) == before


def test_an_editors_article_is_not_changed_by_its_page(
        client: FlaskClient, editor: dict[str, str], publisher: Publisher, store: Any) -> None:
    client.put("/api/v1/articles/ed-1", json=ARTICLE, headers=editor)
    publisher.pages["/ed-1"] = article_page("ed-1", "The page's own title")
    registry.enqueue(store, "default", "ed-1", publisher.url("/ed-1"), store.now())
    assert Verifier(store).step() == 1
    assert articles.get(store, "ed-1")["title"] == ARTICLE["title"]  # type: ignore[index]
    # Done with: not fetched again when the lease would have ended.
    assert registry.pending_count(store, "default") == 0
    assert registry.claim(store, "default", store.now() + timedelta(hours=1)) == []


def test_a_flood_of_made_up_ids_stays_within_the_bound(
        client: FlaskClient, publisher: Publisher, store: Any) -> None:
    """100,000 made-up ids: most through the store function the read calls, a sizeable
    sample through HTTP from many addresses; Redis holds the bound, nothing registers."""
    baseline = key_count(store)
    now = store.now()
    pipe_size = 1000
    for start in range(0, 98_000, pipe_size):
        for n in range(start, start + pipe_size):
            registry.enqueue(store, "default", f"fake-{n}", publisher.url(f"/{n}"), now)
    for n in range(98_000, 100_000):
        answer = client.get("/api/v1/widget",
                            query_string={"article": f"fake-{n}", "url": publisher.url(f"/{n}")},
                            headers={"Origin": publisher.origin},
                            environ_base={"REMOTE_ADDR": f"198.51.{n // 256 % 256}.{n % 256}"})
        assert answer.status_code == 200
    assert registry.pending_count(store, "default") == BOUND
    assert store.redis.hlen(store.keys.registry("default", "urls")) == BOUND
    # Two keys (the queue and its URLs) beyond what was there, and no article; besides
    # them only the addresses' page budgets (`rl`, a minute long) and the day's key for
    # hashing addresses (`addrnonce`).
    assert key_count(store, but=("rl:", "addrnonce:")) == baseline + 2
    assert store.redis.zcard(store.keys.articles) == 0


def queued_counted(outcome: str) -> float:
    value = metrics.app_registry().get_sample_value(
        "engage_pages_queued_total", {"outcome": outcome})
    return float(value or 0.0)


def test_one_address_queues_a_few_reads_a_minute(
        client: FlaskClient, publisher: Publisher, store: Any) -> None:
    """Made-up ids from one address stop being queued after its page budget; the reads
    are answered all the same, and other addresses queue as before."""
    throttled = queued_counted("throttled")
    first = budgets.PAGE_QUEUE_REQUESTS
    for n in range(first + 5):
        assert read(client, publisher, f"m-{n}", publisher.url(f"/m-{n}")).status_code == 200
    assert registry.pending_count(store, "default") == first
    assert queued_counted("throttled") == throttled + 5
    # Off-origin pages are listed from the same budget.
    read(client, publisher, "m-x", "https://elsewhere.example/m-x")
    assert registry.failures(store, "default") == []
    # Another household on another network still registers its page's article.
    answer = client.get("/api/v1/widget",
                        query_string={"article": "m-new", "url": publisher.url("/m-new")},
                        headers={"Origin": publisher.origin},
                        environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert answer.status_code == 200
    assert registry.pending_count(store, "default") == first + 1
    # When its budgets expire (a minute on), the first address queues again.
    store.redis.delete(*store.redis.scan_iter(match=f"{store.keys.prefix}:rl:*"))
    read(client, publisher, "m-late", publisher.url("/m-late"))
    assert registry.pending_count(store, "default") == first + 2


def test_the_page_reader_takes_open_graph_then_title() -> None:
    facts = read_page(b"<html><head><title>Plain &amp; simple</title>"
                      b"<meta name='article:tag' content='x'></head>"
                      b"<body><div data-engage-article='a-1'></div></body></html>")
    assert (facts.og_title, facts.title, facts.ids, facts.tags) == (
        None, "Plain & simple", ["a-1"], ["x"])
    page = Fetched("https://paper.example/a-1", 200,
                   b"<title>T</title><link rel='canonical' href='https://other.example/a-1'>"
                   b"<meta property='article:published_time' content='not a date'>"
                   b"<div data-engage-article='a-1'>", None, None)
    found = found_on(page, "a-1", ["https://paper.example"])
    # A canonical off the origins is not believed; a date that is none is left out.
    assert (found.url, found.title, found.published, found.section) == (
        "https://paper.example/a-1", "T", None, None)
    for odd in ("/a-1\x7f", "/" + "x" * 3000):
        page = Fetched("https://paper.example/a-1", 200,
                       f"<link rel='canonical' href='{odd}'><div data-engage-article='a-1'>"
                       .encode(), None, None)
        assert found_on(page, "a-1", ["https://paper.example"]).url == page.url


def test_the_dashboard_shows_sources_and_unverified_pages(
        client: FlaskClient, desk: Desk, publisher: Publisher, store: Any,
        catch_up: Callable[[], int]) -> None:
    publisher.pages["/good"] = article_page("good-1", "Good page", section="Local",
                                            published="2026-03-02T10:00:00Z")
    read(client, publisher, "good-1", publisher.url("/good"))
    read(client, publisher, "bad-1", publisher.url("/missing"))
    Verifier(store).step()
    desk.post("/dashboard/articles/new", EDITOR_FORM)
    catch_up()
    overview = desk.get("/dashboard").get_data(as_text=True)
    rows = re.findall(r'<tr data-article="([^"]+)">.*?data-source="(\w+)">([^<]*)<',
                      overview, re.S)
    assert {(aid, source) for aid, source, _ in rows} == {("good-1", "page"), ("ed-2", "editor")}
    assert "from its page, verified " in dict((aid, note) for aid, _, note in rows)["good-1"]
    unverified = overview[overview.index('id="unverified-pages"'):]
    assert publisher.url("/missing") in unverified and "<code>status</code>" in unverified
    assert "HTTP 404." in unverified
    detail = desk.get("/dashboard/articles/good-1").get_data(as_text=True)
    assert 'data-source="page">registered from its page, verified' in detail


def test_the_article_form_sets_follow_the_page(
        client: FlaskClient, desk: Desk, publisher: Publisher, store: Any) -> None:
    assert desk.post("/dashboard/articles/new", EDITOR_FORM).status_code == 302
    assert client.get("/api/v1/articles/ed-2").json["follow_page"] is False
    form = desk.get("/dashboard/articles/ed-2/edit").get_data(as_text=True)
    after = form.split('name="follow_page"')[1][:40]
    assert "checked" not in after
    desk.post("/dashboard/articles/ed-2/edit", {**EDITOR_FORM, "follow_page": "1"})
    assert client.get("/api/v1/articles/ed-2").json["follow_page"] is True
    form = desk.get("/dashboard/articles/ed-2/edit").get_data(as_text=True)
    assert "checked" in form.split('name="follow_page"')[1][:40]
    publisher.pages["/ed-2"] = article_page("ed-2", "As the page says", section="Page")
    registry.enqueue(store, "default", "ed-2", publisher.url("/ed-2"), store.now())
    Verifier(store).step()
    assert client.get("/api/v1/articles/ed-2").json["title"] == "As the page says"
