"""Articles: the registry that reactions, polls and links hang from, and its search.

Search (`find`) reads an index kept on every write (`_index`): a sorted set per word of
the title, id and URL path, per tag and per section, each scored by the publication
time, all under one hash tag. A search intersects the sets of its terms (ZINTERSTORE:
its cost grows with the smallest set, not the archive) and pages the result by date.
Redis's own search module would do more, but is not on every Redis engage supports.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from engage import errors
from engage.store import Store, sites

WORD = re.compile(r"\w+")
FOUND_TTL = 30  # seconds a search's intersection is kept: it is only read as it is made


def _epoch(value: datetime) -> float:
    return value.timestamp()


SOURCES = ("editor", "page", "feed")  # who registered an article


def upsert(store: Store, article_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create or update (an editor's write: the article becomes the editor's); returns
    the stored article and whether it was created."""
    written = write(store, article_id, data, "editor")
    assert written is not None  # an editor's write is never refused
    return written


def write(store: Store, article_id: str, data: dict[str, Any], source: str,
          verified_at: datetime | None = None) -> tuple[dict[str, Any], bool] | None:
    """Create or update as `source` (SOURCES); None when a page or feed may not change
    the article (an editor's not following the page, or another site's). `data` may
    carry `follow_page` (the editor's choice; left out keeps it)."""
    keys = store.keys
    now = store.now()
    # The contract's times are UTC; an offset given on input is converted, not kept.
    published: datetime = data["published_at"].astimezone(UTC)
    if data.get("site") and data["site"] not in sites.listing(store):
        raise errors.ValidationFailed(fields={"site": [errors.UnknownSite.message]})
    follow = data.get("follow_page")
    raw = store.run(
        "upsert_article",
        keys=[keys.article(article_id), keys.article_events(article_id)],
        args=[
            data["title"],
            data["url"],
            data["section"],
            published.isoformat(),
            json.dumps(data.get("tags", [])),
            now.isoformat(),
            store.min_event_id(now),
            article_id,
            data.get("site") or "",
            _own_set(data),
            source,
            verified_at.astimezone(UTC).isoformat() if verified_at else "",
            "" if follow is None else "1" if follow else "0",
        ],
    )
    if int(raw[0]) == -1:
        return None
    created = bool(int(raw[0]))
    previous_section, created_at, site, own, verified, following = raw[1:7]
    # Global indexes live outside the article's slot; idempotent, rewritten every PUT.
    pipe = store.redis.pipeline(transaction=False)
    pipe.zadd(keys.articles, {article_id: _epoch(published)})
    if data["section"]:  # a page that names no section files the article under none
        pipe.zadd(keys.section(data["section"]), {article_id: _epoch(published)})
        pipe.sadd(keys.sections, data["section"])
    if previous_section and previous_section != data["section"]:
        pipe.zrem(keys.section(previous_section), article_id)
    _index(store, pipe, article_id, {**data, "published_at": published})
    pipe.execute()
    store.forget(article_id)
    article = {
        "id": article_id,
        "title": data["title"],
        "url": data["url"],
        "section": data["section"],
        "published_at": published.isoformat(),
        "tags": list(data.get("tags", [])),
        "site": site or store.config["DEFAULT_SITE"],
        "reaction_set": sites.reaction_set(store, site, own),
        "created_at": created_at,
        "updated_at": now.isoformat(),
        "source": source,
        "verified_at": verified,
        "follow_page": following == "1",
    }
    return article, created


def _own_set(data: dict[str, Any]) -> str:
    """UPSERT_ARTICLE's ARGV for the article's own reaction set: left out keeps it, null
    drops it for its site's."""
    if "reaction_set" not in data:
        return ""
    own = data["reaction_set"]
    return "-" if own is None else sites.encode_set(own)


def decode(store: Store, article_id: str, raw: dict[str, str]) -> dict[str, Any]:
    return {
        "id": article_id,
        "title": raw.get("title", ""),
        "url": raw.get("url", ""),
        "section": raw.get("section", ""),
        "published_at": raw.get("published_at"),
        "tags": json.loads(raw.get("tags") or "[]"),
        # Articles stored before sites existed have none: the default site's.
        "site": raw.get("site") or store.config["DEFAULT_SITE"],
        "reaction_set": sites.reaction_set(store, raw.get("site"), raw.get("reactions")),
        "created_at": raw.get("created_at"),
        "updated_at": raw.get("updated_at"),
        # Articles stored before sources existed were all registered by editors.
        "source": raw.get("source") or "editor",
        "verified_at": raw.get("verified_at"),
        "follow_page": raw.get("follow_page") == "1",
    }


def get(store: Store, article_id: str) -> dict[str, Any] | None:
    raw = store.redis.hgetall(store.keys.article(article_id))
    return decode(store, article_id, raw) if raw else None


def get_with_counts(
    store: Store, article_id: str
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Article metadata and raw reaction counts in one round trip."""
    pipe = store.redis.pipeline(transaction=False)
    pipe.hgetall(store.keys.article(article_id))
    pipe.hgetall(store.keys.article_counts(article_id))
    meta, counts = pipe.execute()
    return (decode(store, article_id, meta) if meta else None), counts


def get_many(store: Store, article_ids: list[str]) -> dict[str, dict[str, Any]]:
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        pipe.hgetall(store.keys.article(article_id))
    return {
        article_id: decode(store, article_id, raw)
        for article_id, raw in zip(article_ids, pipe.execute(), strict=True)
        if raw
    }


def provenance(store: Store, article_ids: list[str]) -> dict[str, dict[str, str | None]]:
    """Who registered each article (`source`: editor, page or feed) and when its page or
    feed last confirmed it (`verified_at`), in one round trip (the dashboard's lists)."""
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        pipe.hmget(store.keys.article(article_id), "source", "verified_at")
    return {article_id: {"source": source or "editor", "verified_at": verified}
            for article_id, (source, verified) in zip(article_ids, pipe.execute(), strict=True)}


def recent(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """The most recently published articles, newest first (the editors' article picker)."""
    article_ids = list(store.redis.zrevrange(store.keys.articles, 0, limit - 1))
    found = get_many(store, article_ids) if article_ids else {}
    return [found[article_id] for article_id in article_ids if article_id in found]


def sections(store: Store) -> list[str]:
    return sorted(store.redis.smembers(store.keys.sections))


# -- search --------------------------------------------------------------------------------
def terms(text: str) -> set[str]:
    """The words a search matches: casefolded, compatibility forms folded (full-width
    letters, ligatures), split on anything not a letter or digit."""
    return {w.casefold() for w in WORD.findall(unicodedata.normalize("NFKC", text))}


def _index(store: Store, pipe: Any, article_id: str, data: dict[str, Any]) -> None:
    """Queue the article's search index entries on `pipe`, dropping those an edit left."""
    find = store.keys.find
    words = terms(data["title"]) | terms(article_id) | terms(urlsplit(data["url"]).path)
    section = {f"s:{data['section']}"} if data["section"] else set()
    parts = sorted({f"w:{w}" for w in words} | section
                   | {f"t:{t.casefold()}" for t in data.get("tags", [])})
    old = json.loads(store.redis.hget(find("doc"), article_id) or "[]")
    score = data["published_at"].timestamp()
    for part in set(old) - set(parts):
        pipe.zrem(find(part), article_id)
    for part in ["all", *parts]:
        pipe.zadd(find(part), {article_id: score})
    pipe.hset(find("doc"), article_id, json.dumps(parts))


def reindex(store: Store, batch: int = 500) -> int:
    """Index every article (after an upgrade); returns how many."""
    done = 0
    while ids := store.redis.zrange(store.keys.articles, done, done + batch - 1):
        pipe = store.redis.pipeline(transaction=False)
        for article in get_many(store, ids).values():
            published = datetime.fromisoformat(article["published_at"])
            _index(store, pipe, article["id"], {**article, "published_at": published})
        pipe.execute()
        done += len(ids)
    return done


def find(
    store: Store, q: str = "", section: str | None = None, tag: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
    offset: int = 0, limit: int = 50,
) -> tuple[int, list[str]]:
    """(how many articles match, a page of their ids newest first): every word of `q` in
    the title, id or URL path, in `section`, tagged `tag`, published in [since, until]."""
    find_key = store.keys.find
    parts = [f"w:{w}" for w in sorted(terms(q))]
    parts += [f"s:{section}"] if section else []
    parts += [f"t:{tag.casefold()}"] if tag else []
    low = since.timestamp() if since else "-inf"
    high = until.timestamp() if until else "+inf"
    pipe = store.redis.pipeline(transaction=False)
    key = find_key(parts[0] if parts else "all")
    if len(parts) > 1:
        key = find_key("q:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32])
        # Every set scores an article by its publication time: MAX keeps it.
        pipe.zinterstore(key, [find_key(p) for p in parts], aggregate="MAX")
        pipe.expire(key, FOUND_TTL)
    pipe.zcount(key, low, high)
    pipe.zrevrangebyscore(key, high, low, start=offset, num=limit)
    *_, total, ids = pipe.execute()
    return int(total), list(ids)
