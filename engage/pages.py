"""Page verification: the worker fetches the pages readers' widgets named for unknown
article ids and registers each article from its own page (docs/registration.md).

The page says what the article is: its id in `data-engage-article` (the widget's own
element; a page that carries several ids is a listing, and registers none), its title
in `og:title` (else `<title>`), `article:section`, `article:published_time`,
`article:tag`, and its address in `<link rel=canonical>` when that is on the site's
origins (else the address fetched, after redirects). Read with the standard library's
HTML parser, as UTF-8 (bytes that are not become U+FFFD).

`run_pages` runs in `engage worker` and beside `engage serve`. Each entry it takes is
leased in Redis (store/registry.py), so a worker killed mid-fetch leaves the entry to be
taken again when the lease ends, and registering twice changes nothing the second time.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from engage import fetching, metrics, worker
from engage.schemas import CONTROL_CHARACTERS
from engage.store import UNAVAILABLE, Store, registry, sites

log = logging.getLogger("engage.pages")

PAGES_INTERVAL = 0.5  # seconds between looks at the queues when they were empty
URL_MAX = 2048  # a canonical address longer than a widget's `url` may be is not believed
CLAIM_BATCH = 4  # entries taken per site per look: the newest are looked at again soon


class Unverified(Exception):
    """The page was fetched but does not register the article; `reason` is bounded."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class PageFacts:
    """What a page says about itself."""

    ids: list[str] = field(default_factory=list)
    og_title: str | None = None
    title: str = ""
    section: str | None = None
    published: str | None = None
    tags: list[str] = field(default_factory=list)
    canonical: str | None = None


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.facts = PageFacts()
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name.lower(): value or "" for name, value in attrs}
        article_id = found.get("data-engage-article")
        if article_id and article_id not in self.facts.ids:
            self.facts.ids.append(article_id)
        facts = self.facts
        if tag == "title":
            self.in_title = True
        elif tag == "meta":
            prop = (found.get("property") or found.get("name") or "").lower()
            content = found.get("content", "")
            if prop == "og:title" and facts.og_title is None:
                facts.og_title = content
            elif prop == "article:section" and facts.section is None:
                facts.section = content
            elif prop == "article:published_time" and facts.published is None:
                facts.published = content
            elif prop == "article:tag" and content:
                facts.tags.append(content)
        elif tag == "link" and "canonical" in found.get("rel", "").lower().split():
            facts.canonical = facts.canonical or found.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.facts.title += data


def read_page(body: bytes) -> PageFacts:
    reader = _Reader()
    reader.feed(body.decode("utf-8", errors="replace"))
    reader.close()
    return reader.facts


def published_time(text: str | None) -> datetime | None:
    """An ISO 8601 time; one without an offset is UTC; None for anything else."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when if 1000 <= when.year < 9000 else None


def found_on(page: fetching.Fetched, article_id: str, origins: list[str]) -> registry.Found:
    """The article as `page` describes it, or Unverified."""
    facts = read_page(page.body)
    if article_id not in facts.ids:
        raise Unverified("no_id", f"The page carries no data-engage-article=\"{article_id}\".")
    if len(facts.ids) > 1:
        raise Unverified("other_id", "The page carries several article ids (a listing?).")
    url = page.url
    if facts.canonical:
        canonical = urllib.parse.urljoin(page.url, facts.canonical.strip())
        if (fetching.on_origins(canonical, origins) and len(canonical) <= URL_MAX
                and not CONTROL_CHARACTERS.search(canonical)):
            url = canonical
    return registry.Found(
        article_id=article_id, url=url,
        title=(facts.og_title or facts.title).strip(),
        section=(facts.section or "").strip() or None,
        published=published_time(facts.published),
        tags=tuple(facts.tags),
    )


class Verifier:
    """Takes queued ids site by site, fetches their pages and registers them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        metrics.prime_pages()

    def step(self) -> int:
        """One look at every site's queue; returns how many entries it handled."""
        done = 0
        for name, site in sites.listing(self.store).items():
            for article_id, url in registry.claim(self.store, name, self.store.now(),
                                                  CLAIM_BATCH):
                self.verify(name, site, article_id, url)
                done += 1
        return done

    def verify(self, site_name: str, site: dict[str, Any], article_id: str, url: str) -> str:
        """Verify one entry; returns registry.register's outcome or "failed"."""
        store = self.store
        try:
            page = fetching.fetch(url, store.config, origins=site["origins"])
            found = found_on(page, article_id, site["origins"])
        except (fetching.FetchRefused, Unverified) as exc:
            return self._failed(site_name, article_id, url, exc.reason, exc.message)
        except UNAVAILABLE:
            raise
        except Exception:
            # A page the parser chokes on must not come back after every lease.
            log.exception("page of %s could not be read", article_id)
            return self._failed(site_name, article_id, url, "error", "The page could not be read.")
        outcome = registry.register(store, site_name, found, "page", store.now())
        metrics.page_verified(outcome)
        return outcome

    def _failed(self, site_name: str, article_id: str, url: str, reason: str,
                message: str) -> str:
        log.info("page of %s not verified (%s): %s", article_id, reason, message)
        registry.note_failure(self.store, site_name, article_id, reason, message,
                              self.store.now(), url=url)
        metrics.page_verified("failed", reason)
        return "failed"


def run_pages(store: Store, stop: threading.Event, interval: float = PAGES_INTERVAL) -> None:
    """Verify queued pages until `stop` is set."""
    worker.run_steps("page verification", Verifier(store).step, stop, interval)


def start_pages(
    store: Store, stop: threading.Event | None = None
) -> tuple[threading.Thread, threading.Event]:
    """`run_pages` in a daemon thread; set the returned event to stop it."""
    return worker.in_thread("pages", run_pages, store, stop)
