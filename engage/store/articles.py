"""Articles: the registry that reactions, polls and links hang from, and its search.

Search (`find`) reads an index kept on every write (`_index`): a sorted set per word of
the title, id and URL path, per tag, per section and per site, each scored by the
publication time, all under one hash tag. A search intersects the sets of its terms
(ZINTERSTORE: its cost grows with the smallest set, not the archive) and pages the
result by date.

A query word of PREFIX_MIN letters or more also matches the words it begins ("elec"
finds "Election"): the index keeps its vocabulary (every word indexed) in one sorted
set read by lexical range, and a prefix's term is the union of its words' sets. That
costs one entry per distinct word, where a set per prefix would cost one entry per
article and prefix. No stemming: "elections" does not find "election". Redis's own
search module would do more, but is not on every Redis engage supports.
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
# Shorter words match whole words only: one or two letters begin too many words to
# be worth a union.
PREFIX_MIN = 3
# A prefix reads at most this many of its words (the first in lexical order, so the
# shortest of a stem come first): bounds a search's union however large the archive.
PREFIX_WORDS = 1000


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
    raw = store.run("upsert_article", keys=upsert_keys(store, article_id),
                    args=upsert_args(store, article_id, data, source, now, verified_at))
    if raw[0] == "kept":
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
    _index(store, pipe, article_id,
           {**data, "published_at": published, "site": site, "source": source})
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


def upsert_keys(store: Store, article_id: str) -> list[str]:
    """KEYS of `upsert_article`."""
    return [store.keys.article(article_id), store.keys.article_events(article_id)]


def upsert_args(store: Store, article_id: str, data: dict[str, Any], source: str,
                now: datetime, verified_at: datetime | None = None) -> list[Any]:
    """ARGV of `upsert_article` (`write`'s arguments, at `now`)."""
    follow = data.get("follow_page")
    return [
        data["title"],
        data["url"],
        data["section"],
        data["published_at"].astimezone(UTC).isoformat(),
        json.dumps(data.get("tags", [])),
        now.isoformat(),
        store.min_event_id(now),
        article_id,
        data.get("site") or "",
        _own_set(data),
        source,
        verified_at.astimezone(UTC).isoformat() if verified_at else "",
        "" if follow is None else "1" if follow else "0",
    ]


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


def recent(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """The most recently published articles, newest first (the editors' article picker)."""
    article_ids = list(store.redis.zrevrange(store.keys.articles, 0, limit - 1))
    found = get_many(store, article_ids) if article_ids else {}
    return [found[article_id] for article_id in article_ids if article_id in found]


def sections(store: Store, site_names: list[str] | None = None) -> list[str]:
    """Every section name used, or those used by the articles of `site_names`."""
    if site_names is None:
        return sorted(store.redis.smembers(store.keys.sections))
    if not site_names:
        return []
    return sorted(store.redis.sunion([store.keys.find(f"secs:{name}") for name in site_names]))


# -- search --------------------------------------------------------------------------------
def terms(text: str) -> set[str]:
    """The words a search matches: casefolded, compatibility forms folded (full-width
    letters, ligatures), split on anything not a letter or digit."""
    return {w.casefold() for w in WORD.findall(unicodedata.normalize("NFKC", text))}


def _index(store: Store, pipe: Any, article_id: str, data: dict[str, Any],
           old: list[str] | None = None) -> None:
    """Queue the article's search index entries on `pipe`, dropping those an edit left
    (`old`: the entries it had, read here when not given)."""
    find = store.keys.find
    site = data.get("site") or store.config["DEFAULT_SITE"]
    words = terms(data["title"]) | terms(article_id) | terms(urlsplit(data["url"]).path)
    section = {f"s:{data['section']}"} if data["section"] else set()
    parts = sorted({f"w:{w}" for w in words} | section
                   | {f"t:{t.casefold()}" for t in data.get("tags", [])} | {f"site:{site}"}
                   | {f"src:{data.get('source') or 'editor'}"})
    if old is None:
        old = json.loads(store.redis.hget(find("doc"), article_id) or "[]")
    score = data["published_at"].timestamp()
    for part in set(old) - set(parts):
        pipe.zrem(find(part), article_id)
    for part in ["all", *parts]:
        pipe.zadd(find(part), {article_id: score})
    pipe.hset(find("doc"), article_id, json.dumps(parts))
    # Kept like the section names: a word or section no article has any longer costs
    # an empty lookup, not a wrong answer.
    if words:
        pipe.zadd(find("vocab"), dict.fromkeys(words, 0))
    pipe.sadd(find(f"secs:{site}"), data["section"])


def index_many(store: Store, pipe: Any, items: list[tuple[str, dict[str, Any]]]) -> None:
    """`_index` of many articles (id, data with `published_at` a datetime), queued on
    `pipe` after one round trip for the entries they had, where `_index` alone takes
    one per article: what a batch of thousands needs."""
    ids = [article_id for article_id, _ in items]
    had = store.redis.hmget(store.keys.find("doc"), ids) if ids else []
    for (article_id, data), old in zip(items, had, strict=True):
        _index(store, pipe, article_id, data, json.loads(old or "[]"))


def reindex(store: Store, batch: int = 500) -> int:
    """Index every article (after an upgrade); returns how many."""
    done = 0
    while ids := store.redis.zrange(store.keys.articles, done, done + batch - 1):
        pipe = store.redis.pipeline(transaction=False)
        index_many(store, pipe, [
            (article["id"], {**article, "published_at": datetime.fromisoformat(
                article["published_at"])}) for article in get_many(store, ids).values()])
        pipe.execute()
        done += len(ids)
    return done


def _prefixed(store: Store, words: list[str]) -> dict[str, list[str]]:
    """Each word of PREFIX_MIN letters or more -> the indexed words it begins (itself
    when none: the vocabulary of an index not yet rebuilt may miss it), in one round
    trip; a shorter word -> itself."""
    long = [w for w in words if len(w) >= PREFIX_MIN]
    pipe = store.redis.pipeline(transaction=False)
    for word in long:
        # 0xff never occurs in UTF-8, so it closes the range of every continuation.
        start = word.encode()
        pipe.zrangebylex(store.keys.find("vocab"), b"[" + start, b"(" + start + b"\xff",
                         start=0, num=PREFIX_WORDS)
    found = dict(zip(long, pipe.execute(), strict=True)) if long else {}
    return {w: found.get(w) or [w] for w in words}


def find(
    store: Store, q: str = "", section: str | None = None, tag: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
    offset: int = 0, limit: int = 50, site_names: list[str] | None = None,
    source: str | None = None,
) -> tuple[int, list[str]]:
    """(how many articles match, a page of their ids newest first): every word of `q`
    in the title, id or URL path (as a word or a word's beginning, PREFIX_MIN letters
    or more), in `section`, tagged `tag`, published in [since, until], of one of
    `site_names` (None: any site), registered by `source` (SOURCES)."""
    find_key = store.keys.find
    if site_names is not None and not site_names:
        return 0, []
    low = since.timestamp() if since else "-inf"
    high = until.timestamp() if until else "+inf"
    pipe = store.redis.pipeline(transaction=False)

    def union(members: list[str]) -> str:
        """The part naming the union of these parts' sets (queued on `pipe`), or the one."""
        if len(members) == 1:
            return members[0]
        part = "q:" + hashlib.sha256("\n".join(["|", *members]).encode()).hexdigest()[:32]
        # Every set scores an article by its publication time: MAX keeps it.
        pipe.zunionstore(find_key(part), [find_key(m) for m in members], aggregate="MAX")
        pipe.expire(find_key(part), FOUND_TTL)
        return part

    parts = [union([f"w:{m}" for m in matches])
             for _, matches in sorted(_prefixed(store, sorted(terms(q))).items())]
    parts += [f"s:{section}"] if section else []
    parts += [f"t:{tag.casefold()}"] if tag else []
    parts += [f"src:{source}"] if source else []
    if site_names is not None:
        parts.append(union([f"site:{name}" for name in sorted(set(site_names))]))
    key = find_key(parts[0] if parts else "all")
    if len(parts) > 1:
        key = find_key("q:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32])
        pipe.zinterstore(key, [find_key(p) for p in parts], aggregate="MAX")
        pipe.expire(key, FOUND_TTL)
    pipe.zcount(key, low, high)
    pipe.zrevrangebyscore(key, high, low, start=offset, num=limit)
    *_, total, ids = pipe.execute()
    return int(total), list(ids)
