"""Articles from a site's feeds: news sitemaps, sitemap indexes, RSS and Atom, served by a
publisher on loopback, polled conditionally by the worker's poller (engage/feeds.py),
with hostile XML refused and failures listed and backed off."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from engage import feeds, metrics
from engage.cli import main
from engage.feeds import ITEMS_MAX, SITEMAPS_MAX, Poller, article_id, parse, start_feeds
from engage.store import articles, registry
from tests.conftest import ARTICLE, Clock
from tests.publisher import Publisher, wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.usefixtures("loopback_only")

INTERVAL = 300.0
BACKOFF_MAX = 2000.0
# The namespaces engage reads (names, never fetched), as a sitemap declares them.
SITEMAP_NS = (f'xmlns="{feeds.SITEMAP.strip("{}")}" '
              f'xmlns:news="{feeds.NEWS.strip("{}")}"')
ATOM_NS = feeds.SYNDICATION_ROOTS[1].partition("}")[0].lstrip("{")


class FeedPublisher(Publisher):
    """Publisher plus `feeds`: path -> XML bytes, each with an ETag of its content, and a
    304 when the request's If-None-Match is that ETag. `answers` records each (path,
    status)."""

    def __init__(self) -> None:
        super().__init__()
        self.feeds: dict[str, bytes] = {}
        self.answers: list[tuple[str, int]] = []

    def answer(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        body = self.feeds.get(path)
        if body is None:
            super().answer(handler, path, query)
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if handler.headers.get("If-None-Match") == etag:
            self.answers.append((path, 304))
            handler.send_response(304)
            handler.send_header("ETag", etag)
            handler.end_headers()
            return
        self.answers.append((path, 200))
        handler.send_response(200)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("ETag", etag)
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def publisher() -> Iterator[FeedPublisher]:
    site = FeedPublisher()
    site.start()
    yield site
    site.stop()


@pytest.fixture
def app_config(publisher: FeedPublisher) -> dict[str, Any]:
    return {"ALLOWED_ORIGINS": [publisher.origin], "FETCH_PRIVATE_NETWORKS": ["127.0.0.0/8"],
            "FETCH_MAX_BYTES": 1024 * 1024, "FETCH_TIMEOUT": 3.0, "FETCH_HOST_INTERVAL": 0.0,
            "FEED_POLL_SECONDS": INTERVAL, "FEED_BACKOFF_MAX": BACKOFF_MAX,
            "UNVERIFIED_KEPT": 20}


def news_sitemap(origin: str, titles: dict[str, str]) -> bytes:
    entries = "".join(
        f"<url><loc>{origin}/news/{aid}.html</loc><news:news><news:publication>"
        "<news:name>The Paper</news:name><news:language>en</news:language>"
        "</news:publication><news:publication_date>2026-03-04T07:15:00Z"
        f"</news:publication_date><news:title>{escape(title)}</news:title>"
        "<news:keywords>Weather, Harbour</news:keywords></news:news></url>"
        for aid, title in titles.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {SITEMAP_NS}>{entries}</urlset>'.encode()


def rss(origin: str, items: list[tuple[str, str, list[str]]]) -> bytes:
    body = "".join(
        f"<item><title>{escape(title)}</title><link>{origin}/{path}</link>"
        + "".join(f"<category>{c}</category>" for c in categories)
        + "<pubDate>Wed, 04 Mar 2026 07:15:00 GMT</pubDate></item>"
        for path, title, categories in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Paper</title>'
            f"<link>{origin}/</link><description>News</description>{body}</channel></rss>"
            ).encode()


def atom(origin: str, items: list[tuple[str, str, str]]) -> bytes:
    body = "".join(
        f'<entry><title>{escape(title)}</title><link href="{origin}/{path}"/>'
        f"<id>{origin}/{path}</id><updated>2026-03-05T10:00:00Z</updated>"
        f'<category term="{section}"/></entry>'
        for path, title, section in items)
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="' + ATOM_NS + '">'
            f"<title>Paper</title><id>{origin}/</id><updated>2026-03-05T10:00:00Z</updated>"
            f"{body}</feed>").encode()


def set_feeds(client: FlaskClient, admin: dict[str, str], *urls: str) -> None:
    answer = client.patch("/api/v1/sites/default", json={"feeds": list(urls)}, headers=admin)
    assert answer.status_code == 200, answer.json


def item_count(outcome: str) -> float:
    value = metrics.worker_registry().get_sample_value(
        "engage_feed_items_total", {"outcome": outcome})
    return float(value or 0.0)


def failure_count(reason: str) -> float:
    value = metrics.worker_registry().get_sample_value(
        "engage_feed_poll_failures_total", {"reason": reason})
    return float(value or 0.0)


def state(store: Any, url: str) -> dict[str, Any]:
    raw = store.redis.hget(store.keys.registry("default", "feeds"), url)
    return dict(json.loads(raw)) if raw else {}


def title_of(store: Any, aid: str) -> str | None:
    found = articles.get(store, aid)
    return str(found["title"]) if found else None


# -- the acceptance: 1,000 articles in one poll, 10 edits after the next, 304s used ------
def test_a_news_sitemap_of_1000_registers_all_then_edits_then_304(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher, store: Any,
        clock: Clock) -> None:
    titles = {f"story-{n}": f"Story number {n}" for n in range(1000)}
    publisher.feeds["/news-sitemap.xml"] = news_sitemap(publisher.origin, titles)
    url = publisher.url("/news-sitemap.xml")
    set_feeds(client, admin, url)
    poller = Poller(store)

    started = time.monotonic()
    assert poller.step() == 1
    seconds = time.monotonic() - started
    assert seconds < INTERVAL  # within one poll interval, by far
    for n in (0, 1, 500, 999):
        found = articles.get(store, f"story-{n}")
        assert found is not None
        assert found["title"] == f"Story number {n}"
        assert found["url"] == publisher.url(f"/news/story-{n}.html")
        assert found["source"] == "feed"
        assert found["published_at"].startswith("2026-03-04T07:15:00")
        assert found["tags"] == ["Weather", "Harbour"]
    assert store.redis.zcard(store.keys.articles) == 1000
    assert state(store, url)["failures"] == 0

    # Not due before the interval ends: nothing asked.
    clock.advance(INTERVAL - 1)
    assert poller.step() == 0
    assert len(publisher.answers) == 1

    # Ten titles edited: reflected after the next poll, the other 990 untouched.
    for n in range(10):
        titles[f"story-{n}"] = f"Story number {n}, updated"
    publisher.feeds["/news-sitemap.xml"] = news_sitemap(publisher.origin, titles)
    updated, unchanged = item_count("updated"), item_count("unchanged")
    clock.advance(2)
    assert poller.step() == 1
    assert [title_of(store, f"story-{n}") for n in range(10)] == [
        f"Story number {n}, updated" for n in range(10)]
    assert title_of(store, "story-10") == "Story number 10"
    assert item_count("updated") == updated + 10
    assert item_count("unchanged") == unchanged + 990

    # Unchanged since: the poll sends the ETag, the server answers 304, nothing moves.
    verified = articles.get(store, "story-3")["verified_at"]
    counts = {o: item_count(o) for o in ("created", "updated", "unchanged")}
    clock.advance(INTERVAL)
    assert poller.step() == 1
    path, headers = publisher.requests[-1]
    assert path == "/news-sitemap.xml" and headers.get("If-None-Match") == state(
        store, url)["etag"]
    assert publisher.answers[-1] == ("/news-sitemap.xml", 304)
    assert articles.get(store, "story-3")["verified_at"] == verified
    assert {o: item_count(o) for o in counts} == counts
    assert state(store, url)["outcome"] == "not_modified"


def test_rss_and_atom_register_and_follow_edits(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher, store: Any,
        clock: Clock) -> None:
    origin = publisher.origin
    publisher.feeds["/rss.xml"] = rss(origin, [
        ("world/harbour-reopens", "The harbour reopens", ["World", "Weather"]),
        ("local/fair.html", "The fair is back", []),
    ])
    publisher.feeds["/atom.xml"] = atom(origin, [("culture/new-opera", "A new opera", "Culture")])
    set_feeds(client, admin, publisher.url("/rss.xml"), publisher.url("/atom.xml"))
    poller = Poller(store)
    assert poller.step() == 2

    harbour = articles.get(store, "harbour-reopens")
    assert harbour is not None
    assert (harbour["title"], harbour["section"], harbour["tags"]) == (
        "The harbour reopens", "World", ["Weather"])
    assert harbour["published_at"].startswith("2026-03-04T07:15:00")
    assert title_of(store, "fair") == "The fair is back"
    opera = articles.get(store, "new-opera")
    assert opera is not None
    assert (opera["title"], opera["section"], opera["url"]) == (
        "A new opera", "Culture", publisher.url("/culture/new-opera"))

    publisher.feeds["/rss.xml"] = rss(origin, [
        ("world/harbour-reopens", "The harbour reopens at last", ["Local"])])
    publisher.feeds["/atom.xml"] = atom(origin, [("culture/new-opera", "An opera", "Music")])
    clock.advance(INTERVAL)
    assert poller.step() == 2
    harbour = articles.get(store, "harbour-reopens")
    assert (harbour["title"], harbour["section"]) == ("The harbour reopens at last", "Local")
    opera = articles.get(store, "new-opera")
    assert (opera["title"], opera["section"]) == ("An opera", "Music")


def test_an_editors_article_is_not_overwritten(
        client: FlaskClient, admin: dict[str, str], editor: dict[str, str],
        publisher: FeedPublisher, store: Any) -> None:
    assert client.put("/api/v1/articles/desk-1", json={**ARTICLE, "title": "The desk's title"},
                      headers=editor).status_code in (200, 201)
    publisher.feeds["/rss.xml"] = rss(publisher.origin, [
        ("desk-1", "The feed's title", ["Feed"]), ("other-1", "Another", [])])
    set_feeds(client, admin, publisher.url("/rss.xml"))
    kept = item_count("kept")
    assert Poller(store).step() == 1
    desk = articles.get(store, "desk-1")
    assert (desk["title"], desk["source"]) == ("The desk's title", "editor")
    assert title_of(store, "other-1") == "Another"
    assert item_count("kept") == kept + 1


def test_items_without_a_usable_id_title_or_origin_are_skipped_and_counted(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher,
        store: Any) -> None:
    origin = publisher.origin
    body = rss(origin, [("good-1", "Good", []), ("bad%20id", "Spaces", []),
                        ("no-title", "", [])]).replace(
        b"</channel>", b"<item><title>Elsewhere</title><link>https://elsewhere.example/x-1"
                       b"</link></item></channel>")
    publisher.feeds["/rss.xml"] = body
    set_feeds(client, admin, publisher.url("/rss.xml"))
    before = {o: item_count(o) for o in ("bad_id", "no_title", "off_origin")}
    assert Poller(store).step() == 1
    assert title_of(store, "good-1") == "Good"
    assert store.redis.zcard(store.keys.articles) == 1
    assert {o: item_count(o) - before[o] for o in before} == {
        "bad_id": 1, "no_title": 1, "off_origin": 1}


def test_a_sitemap_index_is_followed_once_and_bounded(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher, store: Any,
        clock: Clock) -> None:
    origin = publisher.origin
    children = [f"/sitemaps/{n}.xml" for n in range(SITEMAPS_MAX + 5)]
    for n, path in enumerate(children):
        publisher.feeds[path] = news_sitemap(origin, {f"child-{n}": f"Child {n}"})
    # An index inside the index is not followed.
    publisher.feeds["/sitemaps/0.xml"] = (
        f'<sitemapindex {SITEMAP_NS}><sitemap><loc>{origin}/sitemaps/1.xml</loc></sitemap>'
        "</sitemapindex>").encode()
    publisher.feeds["/index.xml"] = (f'<sitemapindex {SITEMAP_NS}>' + "".join(
        f"<sitemap><loc>{path}</loc></sitemap>" for path in children) + "</sitemapindex>"
    ).encode()
    set_feeds(client, admin, publisher.url("/index.xml"))
    over = item_count("over_limit")
    poller = Poller(store)
    assert poller.step() == 1
    registered = set(store.redis.zrange(store.keys.articles, 0, -1))
    assert registered == {f"child-{n}" for n in range(1, SITEMAPS_MAX)}
    assert item_count("over_limit") == over + 5 + 1
    asked = {path for path, _ in publisher.answers}
    assert asked == {"/index.xml", *children[:SITEMAPS_MAX]}

    # Next poll: the index is a 304, its sitemaps are still asked (each conditionally),
    # and one that changed is read.
    publisher.feeds["/sitemaps/3.xml"] = news_sitemap(origin, {"child-3": "Child three"})
    publisher.answers.clear()
    clock.advance(INTERVAL)
    assert poller.step() == 1
    answers = dict(publisher.answers)
    assert answers["/index.xml"] == 304 and answers["/sitemaps/3.xml"] == 200
    assert answers["/sitemaps/4.xml"] == 304
    assert title_of(store, "child-3") == "Child three"


def test_items_past_the_bound_are_skipped() -> None:
    origin = "https://news.example.com"
    body = news_sitemap(origin, {f"a-{n}": f"A {n}" for n in range(ITEMS_MAX + 3)})
    parsed = parse(body, origin + "/sitemap.xml", [origin])
    assert len(parsed.found) == ITEMS_MAX
    assert parsed.skipped["over_limit"] == 3


def test_an_rss_091_feed_with_its_doctype_is_read() -> None:
    origin = "https://news.example.com"
    body = (b'<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD '
            b'RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
            b'<rss version="0.91"><channel><title>P</title><link>https://news.example.com/'
            b"</link><description>d</description><language>en</language><item><title>Old "
            b"&amp; good</title><link>https://news.example.com/old-1</link></item></channel>"
            b"</rss>")
    parsed = parse(body, origin + "/rss.xml", [origin])
    assert [(f.article_id, f.title) for f in parsed.found] == [("old-1", "Old & good")]


# -- hostile or broken feeds --------------------------------------------------------------
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol9 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">]>
<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title>
<link>ORIGIN/laughs-1</link></item></channel></rss>"""


def xxe(target: str) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY secret SYSTEM "{target}">]>'
            f'<urlset {SITEMAP_NS}><url><loc>ORIGIN/xxe-1</loc><news:news>'
            "<news:title>&secret;</news:title></news:news></url></urlset>").encode()


@pytest.mark.parametrize("body", [BILLION_LAUGHS, xxe("file:///etc/passwd"),
                                  xxe("http://127.0.0.1:9/secret")],
                         ids=["billion-laughs", "xxe-file", "xxe-http"])
def test_hostile_xml_is_refused_without_harm(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher, store: Any,
        body: bytes) -> None:
    publisher.feeds["/evil.xml"] = body.replace(b"ORIGIN", publisher.origin.encode())
    set_feeds(client, admin, publisher.url("/evil.xml"))
    refused = failure_count("xml_refused")
    started = time.monotonic()
    assert Poller(store).step() == 1
    assert time.monotonic() - started < 2
    assert store.redis.zcard(store.keys.articles) == 0
    listed = registry.failures(store, "default")
    assert [(f["key"], f["reason"]) for f in listed] == [
        (publisher.url("/evil.xml"), "xml_refused")]
    assert failure_count("xml_refused") == refused + 1
    assert [path for path, _ in publisher.requests] == ["/evil.xml"]  # nothing else fetched


def test_a_huge_feed_hits_the_size_limit_and_is_listed(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher,
        store: Any) -> None:
    url = publisher.url("/huge?mb=4")
    set_feeds(client, admin, url)
    sized = failure_count("size")
    assert Poller(store).step() == 1
    listed = registry.failures(store, "default")
    assert [(f["url"], f["reason"]) for f in listed] == [(url, "size")]
    assert failure_count("size") == sized + 1
    assert state(store, url)["failures"] == 1


def test_not_a_feed_and_not_xml_are_listed(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher,
        store: Any) -> None:
    publisher.feeds["/page.xml"] = b"<html><body>hello</body></html>"
    publisher.feeds["/broken.xml"] = b"<rss><channel><title>unclosed"
    set_feeds(client, admin, publisher.url("/page.xml"), publisher.url("/broken.xml"))
    assert Poller(store).step() == 2
    reasons = {f["url"]: f["reason"] for f in registry.failures(store, "default")}
    assert reasons == {publisher.url("/page.xml"): "not_feed",
                       publisher.url("/broken.xml"): "not_xml"}


def test_failures_back_off_and_a_fixed_feed_recovers(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher, store: Any,
        clock: Clock) -> None:
    url = publisher.url("/rss.xml")  # 404 until the publisher fixes it
    set_feeds(client, admin, url)
    poller = Poller(store)
    waits = []
    for failures in range(1, 5):
        assert poller.step() == 1
        found = state(store, url)
        assert (found["failures"], found["reason"]) == (failures, "status")
        wait = found["next_at"] - clock().timestamp()
        waits.append(wait)
        clock.advance(wait - 1)
        assert poller.step() == 0  # not due yet: the publisher is not asked
        clock.advance(1)
    assert waits == [2 * INTERVAL, 4 * INTERVAL, BACKOFF_MAX, BACKOFF_MAX]
    assert len(publisher.requests) == 4
    assert [f["reason"] for f in registry.failures(store, "default")] == ["status"]

    publisher.feeds["/rss.xml"] = rss(publisher.origin, [("back-1", "Back", [])])
    assert poller.step() == 1
    assert state(store, url)["failures"] == 0
    assert state(store, url)["next_at"] == clock().timestamp() + INTERVAL
    assert registry.failures(store, "default") == []
    assert title_of(store, "back-1") == "Back"


def test_a_feed_off_the_sites_origins_is_refused(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher,
        store: Any) -> None:
    elsewhere = f"http://127.0.0.2:{publisher.port}/rss.xml"
    publisher.feeds["/rss.xml"] = rss(publisher.origin, [("x-1", "X", [])])
    refused = client.patch("/api/v1/sites/default",
                           json={"origins": [publisher.origin], "feeds": [elsewhere]},
                           headers=admin)
    assert refused.status_code == 422
    assert "feeds" in json.dumps(refused.json)
    assert client.patch("/api/v1/sites/default", json={"feeds": ["ftp://x.example/f"]},
                        headers=admin).status_code == 422
    assert client.patch("/api/v1/sites/default", json={
        "feeds": [publisher.url(f"/{n}.xml") for n in range(11)]}, headers=admin
    ).status_code == 422
    # The origins changed after the feeds were set: the poll refuses it.
    set_feeds(client, admin, elsewhere)
    assert Poller(store).step() == 1
    assert publisher.requests == []
    assert [(f["url"], f["reason"]) for f in registry.failures(store, "default")] == [
        (elsewhere, "origin")]
    assert store.redis.zcard(store.keys.articles) == 0


def test_two_pollers_do_not_poll_one_feed_at_once_and_state_survives_a_restart(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher, store: Any,
        clock: Clock) -> None:
    from engage.store import feeds as feed_state

    publisher.feeds["/rss.xml"] = rss(publisher.origin, [("one-1", "One", [])])
    url = publisher.url("/rss.xml")
    set_feeds(client, admin, url)
    assert feed_state.take(store, "default", url)  # another worker is polling it
    assert Poller(store).step() == 0
    feed_state.release(store, "default", url)
    assert Poller(store).step() == 1
    # A new poller (a restarted worker) keeps the validators: the next poll is a 304.
    clock.advance(INTERVAL)
    assert Poller(store).step() == 1
    assert publisher.answers == [("/rss.xml", 200), ("/rss.xml", 304)]
    # A feed dropped from the site loses its state.
    set_feeds(client, admin)
    assert Poller(store).step() == 0
    assert store.redis.hlen(store.keys.registry("default", "feeds")) == 0


# -- the id rule, and where feeds are set -------------------------------------------------
@pytest.mark.parametrize(("url", "expected"), [
    ("https://news.example.com/world/harbour-reopens", "harbour-reopens"),
    ("https://news.example.com/world/harbour-reopens/", "harbour-reopens"),
    ("https://news.example.com/2026/03/a-1.html?utm=x#top", "a-1"),
    ("https://news.example.com/story:42.htm", "story:42"),
    ("https://news.example.com/", None),
    ("https://news.example.com/.html", None),
    ("https://news.example.com/_hidden", None),
    ("https://news.example.com/caf%C3%A9", None),
    ("https://news.example.com/" + "x" * 129, None),
])
def test_the_article_id_rule(url: str, expected: str | None) -> None:
    assert article_id(url) == expected


def test_feeds_through_the_cli(
        own_redis: RedisServer, tmp_path: Path) -> None:
    env = {name: None for name in os.environ if name.startswith("ENGAGE_")}
    env.update({"ENGAGE_REDIS_URL": own_redis.url, "ENGAGE_LOG_JSON": "0",
                "ENGAGE_SECRET_KEY": "cli-test-secret-long-enough"})

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    made = run("site", "create", "mag", "--origins", "https://mag.example.com",
               "--feed", "https://mag.example.com/rss.xml",
               "--feed", "https://mag.example.com/news-sitemap.xml")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["feeds"] == ["https://mag.example.com/rss.xml",
                                                "https://mag.example.com/news-sitemap.xml"]
    assert run("site", "update", "mag", "--feed", "not a url").exit_code != 0
    assert run("site", "update", "mag", "--origins", "https://other.example.com",
               "--feed", "https://mag.example.com/rss.xml").exit_code != 0
    cleared = run("site", "update", "mag", "--no-feeds")
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["feeds"] == []


def test_feeds_through_the_admin_form(admin_desk: Any, client: FlaskClient,
                                      admin: dict[str, str], publisher: FeedPublisher) -> None:
    page = "/dashboard/admin/sites/default"
    url = publisher.url("/rss.xml")
    saved = admin_desk.post(page, {"origins": publisher.origin, "feeds": url})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    assert client.get("/api/v1/sites/default", headers=admin).json["feeds"] == [url]
    assert f'value="{url}"' in admin_desk.get(page).get_data(as_text=True)
    refused = admin_desk.post(page, {"origins": publisher.origin,
                                     "feeds": "https://elsewhere.example/rss.xml"})
    assert refused.status_code == 422
    assert "on one of the site&#39;s origins" in refused.get_data(as_text=True)
    assert client.get("/api/v1/sites/default", headers=admin).json["feeds"] == [url]
    # Blank: no feed polled any more.
    assert admin_desk.post(page, {"origins": publisher.origin, "feeds": ""}).status_code == 302
    assert client.get("/api/v1/sites/default", headers=admin).json["feeds"] == []


def test_the_dashboard_lists_a_failing_feed(
        client: FlaskClient, admin: dict[str, str], desk: Any, publisher: FeedPublisher,
        store: Any) -> None:
    url = publisher.url("/missing.xml")
    set_feeds(client, admin, url)
    assert Poller(store).step() == 1
    page = desk.get("/dashboard").get_data(as_text=True)
    listed = page[page.index('id="unverified-pages"'):]
    assert url in listed and "<code>status</code>" in listed


def test_the_worker_thread_polls_the_feeds(
        client: FlaskClient, admin: dict[str, str], publisher: FeedPublisher,
        store: Any) -> None:
    publisher.feeds["/rss.xml"] = rss(publisher.origin, [("thread-1", "From the thread", [])])
    set_feeds(client, admin, publisher.url("/rss.xml"))
    thread, stop = start_feeds(store)
    try:
        assert wait_for(lambda: title_of(store, "thread-1"), 5.0) == "From the thread"
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
