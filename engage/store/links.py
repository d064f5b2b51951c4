"""Related links ("Policy Link"): curated per article, filled up with related articles.

Link ids are derived from the article and the URL, so an editor who saves the same
list again keeps the ids (and their click history) without a read-before-write.
Clicks and impressions are counted in the article's slot by one script each, which
also keeps the per-address windows that stop one client from inflating them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from engage.formulas import wilson_lower
from engage.store import Store, articles, budgets, reactions, scripts
from engage.store.exceptions import UnknownArticle
from engage.store.scripts import Status

REDIRECT_PREFIX = "/r/"
# How many same-section articles are considered when filling the box.
RELATED_CANDIDATES = 50
_UNKNOWN_ARTICLE: scripts.Refusals = {Status.UNKNOWN: UnknownArticle}


def link_id(article_id: str, url: str) -> str:
    digest = hashlib.blake2b(f"{article_id}\n{url}".encode(), digest_size=8).hexdigest()
    return "l" + digest


def _public(link: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": link["id"],
        "title": link["title"],
        "url": link["url"],
        "href": REDIRECT_PREFIX + link["id"],
    }


def _decode(raw: str | None) -> list[dict[str, Any]]:
    return list(json.loads(raw)) if raw else []


def set_links(
    store: Store, article_id: str, items: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """Replace the curated list; raises UnknownArticle. Duplicate URLs keep the first."""
    stored: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        lid = link_id(article_id, item["url"])
        if lid in seen:
            continue
        seen.add(lid)
        stored.append({"id": lid, "title": item["title"], "url": item["url"]})
    keys = store.keys
    raw = store.run(
        "set_links",
        keys=[keys.article(article_id), keys.article_links(article_id)],
        args=[json.dumps(stored, ensure_ascii=False)],
    )
    result = scripts.raise_for_status(raw, _UNKNOWN_ARTICLE)
    removed = {link["id"] for link in _decode(result.values[0] or None)} - seen
    # The index is global (outside the slot); idempotent, rewritten by every PUT.
    pipe = store.redis.pipeline(transaction=False)
    if stored:
        pipe.hset(keys.linkindex, mapping={link["id"]: article_id for link in stored})
    if removed:
        pipe.hdel(keys.linkindex, *removed)
    pipe.execute()
    return [_public(link) for link in stored]


def curated(store: Store, article_id: str) -> list[dict[str, Any]]:
    raw = store.redis.get(store.keys.article_links(article_id))
    return [_public(link) for link in _decode(raw)]


def _rank(
    store: Store, candidates: list[str], metas: dict[str, dict[str, Any]],
    counts: dict[str, reactions.Reactions | None], exclude: set[str], wanted: int,
) -> list[dict[str, Any]]:
    """Articles ranked by reader approval (the Wilson lower bound the stats rank by, so
    few votes rank below many at the same share), newest first among equals; an article
    without votes scores 0."""
    approve = store.config["CHOICES"][0]
    ranked: list[tuple[float, int, str]] = []
    for order, aid in enumerate(candidates):
        meta, result = metas.get(aid), counts.get(aid)
        if meta is None or aid in exclude or meta["url"] in exclude:
            continue
        score = wilson_lower(result.counts[approve], result.total) if result else None
        ranked.append((-(score or 0.0), order, aid))
    ranked.sort()
    return [
        {
            "id": "article:" + aid,
            "title": metas[aid]["title"],
            "url": metas[aid]["url"],
            "href": metas[aid]["url"],
            "related": True,
        }
        for _, _, aid in ranked[:wanted]
    ]


def for_articles(store: Store, article_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each article's box: its curated links, then related articles up to LINKS_SHOWN.

    Filled-in articles link straight to their URL (they have no click counter). A fixed
    number of round trips however many articles: links, section lists, candidates.
    """
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        pipe.hget(keys.article(article_id), "section")
        pipe.get(keys.article_links(article_id))
    replies = pipe.execute()
    shown = int(store.config["LINKS_SHOWN"])
    out: dict[str, list[dict[str, Any]]] = {}
    short: dict[str, str] = {}  # article -> section, for boxes that need filling
    for index, article_id in enumerate(article_ids):
        section, raw = replies[2 * index], replies[2 * index + 1]
        out[article_id] = [_public(link) for link in _decode(raw)]
        if section and len(out[article_id]) < shown:
            short[article_id] = section
    if not short:
        return out
    sections = list(dict.fromkeys(short.values()))
    pipe = store.redis.pipeline(transaction=False)
    for section in sections:
        pipe.zrevrange(keys.section(section), 0, RELATED_CANDIDATES - 1)
    by_section = dict(zip(sections, pipe.execute(), strict=True))
    candidates = list(dict.fromkeys(aid for ids in by_section.values() for aid in ids))
    metas = articles.get_many(store, candidates)
    counts = reactions.read_many(store, candidates)
    for article_id, section in short.items():
        exclude = {article_id} | {link["url"] for link in out[article_id]}
        out[article_id] += _rank(store, list(by_section[section]), metas, counts, exclude,
                                 shown - len(out[article_id]))
    return out


def article_of(store: Store, link_id_: str) -> str | None:
    article_id: str | None = store.redis.hget(store.keys.linkindex, link_id_)
    return article_id


@dataclass(frozen=True)
class Click:
    """Where a link goes, and why its click was not counted (None: it was)."""

    url: str
    refused: str | None = None


# Why a click goes uncounted before it reaches the store.
NOT_HUMAN = "bot"
PREFETCH = "prefetch"


def click(
    store: Store, link_id_: str, address: str, refused: str | None = None,
    networks: budgets.Networks = budgets.NO_NETWORKS,
) -> Click | None:
    """Resolve a link and count one click from `address` (a hashed address group), or
    None for an unknown link.

    A click is counted at most once per address group per link per CLICK_WINDOW, and
    up to each wider network's budget (`networks`, store/budgets.py): "duplicate" and
    "throttled" when not; `refused` ("bot" or "prefetch") says it must not count at all.
    Either way a click not counted is tallied as refused in the article's buckets, in
    the same script.
    """
    article_id = article_of(store, link_id_)
    if article_id is None:
        return None
    keys = store.keys
    owner = keys.article(article_id)
    now = store.now()
    hour_ttl, day_ttl = store.bucket_ttls()
    raw = store.run(
        "click_link",
        keys=[
            keys.article_links(article_id),
            keys.article_linkstats(article_id),
            keys.hour_bucket(owner, now),
            keys.day_bucket(owner, now),
            keys.article_events(article_id),
            keys.article_click_seen(article_id, address, link_id_),
            *(keys.article_click_seen(article_id, network, link_id_)
              for network in networks.values()),
        ],
        args=[link_id_, refused or "", hour_ttl, day_ttl, store.min_event_id(now),
              article_id, int(store.config["CLICK_WINDOW"]),
              budgets.click_limits(store.config, networks)],
    )
    result = scripts.parse(raw)
    if result.status == Status.UNKNOWN:
        return None
    why = str(result.values[1]) if result.status == Status.UNCHANGED else None
    return Click(str(result.values[0]), why)


def impressions(
    store: Store, article_id: str, address: str, link_ids: list[str]
) -> tuple[int, int]:
    """Count one impression per link the article has, up to IMPRESSION_CAP per address
    group per link per CLICK_WINDOW; returns (counted, refused over the cap)."""
    keys = store.keys
    owner = keys.article(article_id)
    now = store.now()
    hour_ttl, day_ttl = store.bucket_ttls()
    raw = store.run(
        "count_impressions",
        keys=[
            owner,
            keys.article_links(article_id),
            keys.article_linkstats(article_id),
            keys.hour_bucket(owner, now),
            keys.day_bucket(owner, now),
            keys.article_events(article_id),
            keys.article_impressions_seen(article_id, address),
        ],
        args=[hour_ttl, day_ttl, store.min_event_id(now), article_id,
              int(store.config["IMPRESSION_CAP"]), int(store.config["CLICK_WINDOW"]),
              *dict.fromkeys(link_ids)],
    )
    result = scripts.raise_for_status(raw, _UNKNOWN_ARTICLE)
    return int(result.values[0]), int(result.values[1])


def stats(store: Store, article_id: str) -> list[dict[str, Any]]:
    """Clicks, impressions and click-through rate of each curated link."""
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    pipe.get(keys.article_links(article_id))
    pipe.hgetall(keys.article_linkstats(article_id))
    raw_links, counters = pipe.execute()
    out = []
    for link in _decode(raw_links):
        clicks = int(counters.get(f"{link['id']}:clicks", 0))
        imps = int(counters.get(f"{link['id']}:imps", 0))
        out.append({
            "id": link["id"],
            "title": link["title"],
            "url": link["url"],
            "clicks": clicks,
            "impressions": imps,
            "ctr": clicks / imps if imps else None,
        })
    return out
