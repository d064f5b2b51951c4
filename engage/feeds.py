"""Articles from a site's own feeds: the worker polls each URL of a site's `feeds` (news
sitemaps, sitemap indexes, RSS and Atom feeds) and registers or updates the articles
they list (docs/registration.md#from-feeds).

Every fetch goes through engage/fetching.py with the site's origins: a feed, a sitemap
an index names, and every article URL must be on them. Polls are conditional (the last
answer's ETag and Last-Modified); a 304, or a body identical to the last one, registers
nothing. A failed poll is listed with the site's unverified pages and waits twice as long
as the one before (FEED_POLL_SECONDS doubling, at most FEED_BACKOFF_MAX).

The XML is parsed by defusedxml, which refuses entity declarations (billion laughs,
external entities) before anything is expanded; a sitemap is read from that tree, an
RSS or Atom feed is then handed, as the bytes already fetched, to feedparser (which
never fetches anything itself: it is given a stream).
"""

from __future__ import annotations

import calendar
import hashlib
import io
import logging
import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree
import feedparser

from engage import fetching, metrics, worker
from engage.pages import published_time
from engage.schemas import ID_RE
from engage.store import UNAVAILABLE, Store, registry, sites
from engage.store import feeds as feed_state

log = logging.getLogger("engage.feeds")

SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
NEWS = "{http://www.google.com/schemas/sitemap-news/0.9}"
SYNDICATION_ROOTS = ("rss", "{http://www.w3.org/2005/Atom}feed",
                     "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF")
FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/xml;q=0.9, "
               "text/xml;q=0.9, */*;q=0.1")
ITEMS_MAX = 5000  # items read from one feed or sitemap; a news sitemap holds at most 1,000
SITEMAPS_MAX = 20  # sitemaps read from one index (an index inside an index is not followed)
FEEDS_INTERVAL = 1.0  # seconds between looks for feeds due when none was
PAGE_SUFFIXES = (".html", ".htm", ".shtml", ".php")


class Unreadable(Exception):
    """The feed was fetched but could not be read; `reason` is one of
    metrics.FEED_FAILURES."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Parsed:
    """What one document lists: articles, skipped items by reason, and (an index) the
    sitemaps it names."""

    found: list[registry.Found] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    sitemaps: list[str] = field(default_factory=list)


def article_id(url: str) -> str | None:
    """The id of the article at `url`: the last non-empty segment of its path, less a
    page suffix (.html, .htm, .shtml, .php); None when that is not an id (1-128
    characters of A-Z a-z 0-9 . _ : - from a letter or digit)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    segment = next((part for part in reversed(path.split("/")) if part), "")
    for suffix in PAGE_SUFFIXES:
        if segment.lower().endswith(suffix) and len(segment) > len(suffix):
            segment = segment[: -len(suffix)]
            break
    return segment if ID_RE.fullmatch(segment) else None


def _root(body: bytes) -> Element:
    try:
        root: Element = defusedxml.ElementTree.fromstring(body)
    except defusedxml.DefusedXmlException as exc:
        raise Unreadable("xml_refused",
                         f"The feed declares entities or external references "
                         f"({type(exc).__name__}); refused.") from None
    except ParseError as exc:
        raise Unreadable("not_xml", f"The feed is not well-formed XML ({exc}).") from None
    return root


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _add(parsed: Parsed, url: str, title: str, section: str | None,
         published: datetime | None, tags: tuple[str, ...], origins: list[str]) -> None:
    if len(parsed.found) >= ITEMS_MAX:
        parsed.skipped["over_limit"] += 1
        return
    if not fetching.on_origins(url, origins):
        parsed.skipped["off_origin"] += 1
        return
    found_id = article_id(url)
    if found_id is None:
        parsed.skipped["bad_id"] += 1
        return
    if not title:
        # A title-less entry would replace a good title with the id.
        parsed.skipped["no_title"] += 1
        return
    parsed.found.append(registry.Found(article_id=found_id, url=url, title=title,
                                       section=section, published=published, tags=tags))


def _sitemap(root: Element, base: str, origins: list[str]) -> Parsed:
    parsed = Parsed()
    if root.tag == f"{SITEMAP}sitemapindex":
        for entry in root.iter(f"{SITEMAP}sitemap"):
            loc = _text(entry.find(f"{SITEMAP}loc"))
            if loc and len(parsed.sitemaps) < SITEMAPS_MAX:
                parsed.sitemaps.append(urllib.parse.urljoin(base, loc))
            elif loc:
                parsed.skipped["over_limit"] += 1
        return parsed
    for entry in root.iter(f"{SITEMAP}url"):
        news = entry.find(f"{NEWS}news")
        keywords = _text(news.find(f"{NEWS}keywords")) if news is not None else ""
        _add(parsed, urllib.parse.urljoin(base, _text(entry.find(f"{SITEMAP}loc"))),
             _text(news.find(f"{NEWS}title")) if news is not None else "",
             None,
             published_time(_text(news.find(f"{NEWS}publication_date")))
             if news is not None else None,
             tuple(k.strip() for k in keywords.split(",") if k.strip()), origins)
    return parsed


def _when(entry: Any) -> datetime | None:
    # Only the publication date: Atom's `updated` moves with every edit.
    parsed = entry.get("published_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def _syndication(body: bytes, base: str, origins: list[str]) -> Parsed:
    # A stream, so feedparser reads these bytes and never opens a URL or a file.
    document = feedparser.parse(io.BytesIO(body),
                                response_headers={"content-location": base})
    parsed = Parsed()
    for entry in document.entries:
        categories = [t.get("term", "").strip() for t in entry.get("tags", [])]
        categories = [c for c in categories if c]
        _add(parsed, urllib.parse.urljoin(base, entry.get("link", "")),
             entry.get("title", "").strip(), categories[0] if categories else None,
             _when(entry), tuple(categories[1:]), origins)
    return parsed


def parse(body: bytes, base: str, origins: list[str]) -> Parsed:
    """The articles a sitemap, news sitemap, RSS or Atom feed fetched from `base` lists,
    or Unreadable."""
    root = _root(body)
    if root.tag in (f"{SITEMAP}urlset", f"{SITEMAP}sitemapindex"):
        return _sitemap(root, base, origins)
    if root.tag in SYNDICATION_ROOTS:
        return _syndication(body, base, origins)
    raise Unreadable("not_feed", "Neither a sitemap nor an RSS or Atom feed.")


class Poller:
    """Polls the feeds that are due, site by site, and registers what they list."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.interval = float(store.config["FEED_POLL_SECONDS"])
        self.backoff_max = float(store.config["FEED_BACKOFF_MAX"])
        metrics.prime_feeds()

    def step(self) -> int:
        """Poll every feed that is due; returns how many were polled."""
        done = 0
        for name, site in sites.listing(self.store).items():
            urls = list(site.get("feeds") or [])
            now = self.store.now().timestamp()
            for url, state in feed_state.states(self.store, name, urls).items():
                if state.get("next_at", 0) > now or not feed_state.take(self.store, name, url):
                    continue
                try:
                    self.poll(name, site, url, state)
                finally:
                    feed_state.release(self.store, name, url)
                done += 1
        return done

    def poll(self, site_name: str, site: dict[str, Any], url: str,
             state: dict[str, Any]) -> str:
        """Poll one feed (and, an index, its sitemaps); returns its FEED_OUTCOMES."""
        store = self.store
        now = store.now()
        try:
            outcome, parsed, kept = self._read(url, site["origins"], state)
            self._register(site_name, parsed, now)
            # An index's sitemaps are polled every time (each conditionally): one may
            # change while the index stays the same.
            previous = {child["url"]: child for child in state.get("children", [])}
            listed = parsed.sitemaps if outcome == "fetched" else list(previous)
            children = [self._child(site_name, site, child, previous.get(child, {}), now)
                        for child in listed]
        except (fetching.FetchRefused, Unreadable) as exc:
            return self._failed(site_name, url, state, exc.reason, exc.message, now)
        except UNAVAILABLE:
            raise
        except Exception:
            # A feed the parser chokes on waits its backoff like any other failure.
            log.exception("feed %s could not be read", url)
            return self._failed(site_name, url, state, "error", "The feed could not be read.",
                                now)
        metrics.feed_polled(outcome)
        registry.forget_failure(store, site_name, url)
        feed_state.save(store, site_name, url, {
            **kept, "failures": 0, "checked_at": now.isoformat(), "outcome": outcome,
            "next_at": (now + timedelta(seconds=self.interval)).timestamp(),
            "children": children,
        })
        return outcome

    def _read(self, url: str, origins: list[str], old: dict[str, Any]
              ) -> tuple[str, Parsed, dict[str, Any]]:
        """(outcome, what it lists, validators to keep) of one conditional fetch."""
        fetched = fetching.fetch(url, self.store.config, origins=origins,
                                 etag=old.get("etag"), last_modified=old.get("last_modified"),
                                 accept=FEED_ACCEPT)
        digest = hashlib.sha256(fetched.body).hexdigest() if fetched.status == 200 else None
        kept = {"etag": fetched.etag, "last_modified": fetched.last_modified,
                "digest": digest or old.get("digest")}
        if fetched.status == 304 or digest == old.get("digest"):
            return "not_modified", Parsed(), kept
        return "fetched", parse(fetched.body, fetched.url, origins), kept

    def _child(self, site_name: str, site: dict[str, Any], url: str, old: dict[str, Any],
               now: datetime) -> dict[str, Any]:
        """Poll one sitemap an index names; its state (only its URL when it failed: it is
        listed as unverified and asked again next time)."""
        try:
            outcome, parsed, kept = self._read(url, site["origins"], old)
            if parsed.sitemaps:
                parsed.skipped["over_limit"] += len(parsed.sitemaps)  # no index in an index
            self._register(site_name, parsed, now)
        except (fetching.FetchRefused, Unreadable) as exc:
            self._note(site_name, url, exc.reason, exc.message, now)
            return {"url": url}
        metrics.feed_polled(outcome)
        registry.forget_failure(self.store, site_name, url)
        return {"url": url, **kept}

    def _register(self, site_name: str, parsed: Parsed, now: datetime) -> None:
        outcomes: Counter[str] = Counter(parsed.skipped)
        for found in parsed.found:
            outcomes[registry.register(self.store, site_name, found, "feed", now)] += 1
        for outcome, n in outcomes.items():
            metrics.feed_items(outcome, n)

    def _note(self, site_name: str, url: str, reason: str, message: str,
              now: datetime) -> None:
        log.info("feed %s not read (%s): %s", url, reason, message)
        registry.note_failure(self.store, site_name, url, reason, message, now, url=url)
        metrics.feed_polled("failed", reason)

    def _failed(self, site_name: str, url: str, state: dict[str, Any], reason: str,
                message: str, now: datetime) -> str:
        self._note(site_name, url, reason, message, now)
        failures = int(state.get("failures", 0)) + 1
        wait = min(self.interval * 2 ** failures, self.backoff_max)
        feed_state.save(self.store, site_name, url, {
            **state, "failures": failures, "checked_at": now.isoformat(), "outcome": "failed",
            "reason": reason, "next_at": (now + timedelta(seconds=wait)).timestamp(),
        })
        return "failed"


def run_feeds(store: Store, stop: threading.Event, interval: float = FEEDS_INTERVAL) -> None:
    """Poll the sites' feeds as they fall due until `stop` is set."""
    worker.run_steps("feed polling", Poller(store).step, stop, interval)


def start_feeds(
    store: Store, stop: threading.Event | None = None
) -> tuple[threading.Thread, threading.Event]:
    """`run_feeds` in a daemon thread; set the returned event to stop it."""
    return worker.in_thread("feeds", run_feeds, store, stop)
