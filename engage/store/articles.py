"""Articles: the registry that reactions, polls and links hang from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from engage import errors
from engage.store import Store, sites


def _epoch(value: datetime) -> float:
    return value.timestamp()


def upsert(store: Store, article_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create or update; returns the stored article and whether it was created."""
    keys = store.keys
    now = store.now()
    # The contract's times are UTC; an offset given on input is converted, not kept.
    published: datetime = data["published_at"].astimezone(UTC)
    if data.get("site") and data["site"] not in sites.listing(store):
        raise errors.ValidationFailed(fields={"site": [errors.UnknownSite.message]})
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
        ],
    )
    created, previous_section, created_at, site, own = (
        bool(int(raw[0])), raw[1], raw[2], raw[3], raw[4])
    # Global indexes live outside the article's slot; idempotent, rewritten every PUT.
    pipe = store.redis.pipeline(transaction=False)
    pipe.zadd(keys.articles, {article_id: _epoch(published)})
    pipe.zadd(keys.section(data["section"]), {article_id: _epoch(published)})
    pipe.sadd(keys.sections, data["section"])
    if previous_section and previous_section != data["section"]:
        pipe.zrem(keys.section(previous_section), article_id)
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


def recent(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """The most recently published articles, newest first (the editors' article picker)."""
    article_ids = list(store.redis.zrevrange(store.keys.articles, 0, limit - 1))
    found = get_many(store, article_ids) if article_ids else {}
    return [found[article_id] for article_id in article_ids if article_id in found]


def sections(store: Store) -> list[str]:
    return sorted(store.redis.smembers(store.keys.sections))
