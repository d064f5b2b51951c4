"""Articles that register themselves: the pending queue of unknown ids readers' pages
name, what a verified page or feed registers, and the failures the dashboard lists.

A reader's first read of an unknown id, with its page's URL on one of the site's
origins, queues the id (`enqueue`) in one sorted set per site, bounded by
PENDING_PER_SITE: past it the oldest waiting entries are dropped, so a flood of made-up
ids holds Redis at the bound however many addresses send it. The worker takes entries
(`claim`, leased so a restart loses none), fetches the page (engage/fetching.py) and
registers what the page says (`register`) or records why not (`note_failure`, the newest
UNVERIFIED_KEPT per site). An id that failed is not queued again for FAILED_RETRY
seconds, so one broken page is not fetched on every reader's visit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engage.store import Store, articles

FAILED_RETRY = 600  # seconds before an id whose page failed is queued again
LEASE = 120  # seconds a claimed entry is the claimer's before another worker may take it

# Stored text is one line within the article schema's lengths (schemas.ArticleInSchema).
TITLE_MAX, SECTION_MAX, TAG_MAX, TAGS_MAX = 300, 64, 64, 20


@dataclass(frozen=True)
class Found:
    """An article as its page or feed describes it."""

    article_id: str
    url: str
    title: str
    section: str | None
    published: datetime | None
    tags: tuple[str, ...]


def _line(text: str, limit: int) -> str:
    """One line of at most `limit` characters: control characters become spaces and runs
    of white space one space (a page's title may span lines)."""
    return " ".join("".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c
                            for c in text).split())[:limit]


def _data(store: Store, site: str, found: Found, existing: dict[str, Any] | None,
          now: datetime) -> dict[str, Any]:
    tags = list(dict.fromkeys(t for t in (_line(t, TAG_MAX) for t in found.tags) if t))
    published = found.published or (
        datetime.fromisoformat(existing["published_at"]) if existing else now)
    section = found.section if found.section is not None else (
        existing["section"] if existing else "")
    return {
        "title": _line(found.title, TITLE_MAX) or found.article_id,
        "url": found.url,
        "section": _line(section, SECTION_MAX),
        "published_at": published.astimezone(UTC),
        "tags": tags[:TAGS_MAX],
        "site": site,
    }


def _same(existing: dict[str, Any], data: dict[str, Any]) -> bool:
    return (existing["title"], existing["url"], existing["section"], existing["tags"],
            existing["published_at"]) == (data["title"], data["url"], data["section"],
                                          data["tags"], data["published_at"].isoformat())


def register(store: Store, site: str, found: Found, source: str, now: datetime) -> str:
    """Register or update the article `found` describes, as `source` ("page" or "feed");
    returns "created", "updated", "unchanged" (only its verified_at moved) or "kept" (an
    editor's article not following the page, or another site's: nothing written)."""
    existing = articles.get(store, found.article_id)
    data = _data(store, site, found, existing, now)
    # Whatever the outcome, the id leaves the queue: a kept article is not fetched again.
    _done(store, site, found.article_id)
    if existing is not None:
        owned = existing["source"] == "editor" and not existing["follow_page"]
        if owned or existing["site"] != site:
            return "kept"
        if _same(existing, data):
            # The editor's own choice and source stay; only the confirmation is new.
            store.redis.hset(store.keys.article(found.article_id), "verified_at",
                             now.astimezone(UTC).isoformat())
            return "unchanged"
    written = articles.write(store, found.article_id, data, source, verified_at=now)
    if written is None:
        return "kept"  # an editor took it over since it was read
    return "created" if written[1] else "updated"


def enqueue(store: Store, site: str, article_id: str, url: str, now: datetime) -> bool:
    """Queue an unknown id a reader's page named; False when it was already waiting, or
    failed within FAILED_RETRY seconds. The caller has checked the URL is on the site's
    origins."""
    keys = store.keys
    queued = store.run(
        "enqueue_pending",
        keys=[keys.registry(site, "pending"), keys.registry(site, "urls"),
              keys.registry(site, "failed")],
        args=[article_id, url, now.timestamp(), int(store.config["PENDING_PER_SITE"]),
              FAILED_RETRY],
    )
    return bool(queued)


def claim(store: Store, site: str, now: datetime, limit: int = 10) -> list[tuple[str, str]]:
    """Up to `limit` waiting (article id, page URL) pairs, newest first, each leased for
    LEASE seconds: `register` or `note_failure` ends it, a dead worker's comes back."""
    keys = store.keys
    raw = store.run(
        "claim_pending",
        keys=[keys.registry(site, "pending"), keys.registry(site, "urls")],
        args=[now.timestamp(), now.timestamp() + LEASE, limit],
    )
    return list(zip(raw[::2], raw[1::2], strict=True))


def pending_count(store: Store, site: str) -> int:
    return int(store.redis.zcard(store.keys.registry(site, "pending")))


def _done(store: Store, site: str, article_id: str) -> None:
    """The id is verified: off the queue and the failures list."""
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    pipe.zrem(keys.registry(site, "pending"), article_id)
    pipe.hdel(keys.registry(site, "urls"), article_id)
    pipe.zrem(keys.registry(site, "failed"), article_id)
    pipe.hdel(keys.registry(site, "failures"), article_id)
    pipe.execute()


def note_failure(store: Store, site: str, url_or_id: str, reason: str, message: str,
                 now: datetime, url: str | None = None) -> None:
    """Record why `url_or_id` (an article id, or a feed's URL) could not be verified:
    `reason` a bounded code (fetching.REASONS, or the parser's), `message` for people.
    Ends its place in the queue; the newest UNVERIFIED_KEPT per site are kept."""
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    pipe.zrem(keys.registry(site, "pending"), url_or_id)
    pipe.hdel(keys.registry(site, "urls"), url_or_id)
    pipe.execute()
    record = {"key": url_or_id, "url": url or url_or_id, "reason": reason,
              "message": message[:300], "at": now.astimezone(UTC).isoformat()}
    store.run(
        "note_failure",
        keys=[keys.registry(site, "failed"), keys.registry(site, "failures")],
        args=[url_or_id, json.dumps(record), now.timestamp(),
              int(store.config["UNVERIFIED_KEPT"])],
    )


def failures(store: Store, site: str, limit: int = 100) -> list[dict[str, Any]]:
    """The site's unverified pages, newest first: {key, url, reason, message, at}."""
    keys = store.keys
    ids = store.redis.zrevrange(keys.registry(site, "failed"), 0, limit - 1)
    if not ids:
        return []
    raw = store.redis.hmget(keys.registry(site, "failures"), ids)
    return [json.loads(item) for item in raw if item]


def forget_failure(store: Store, site: str, url_or_id: str) -> None:
    """`url_or_id` verified (a feed read again): off the unverified list."""
    _done(store, site, url_or_id)
