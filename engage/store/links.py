"""Related links ("Policy Link"): curated per article, filled up with related articles.

Link ids are derived from the article and the URL, so an editor who saves the same
list again keeps the ids (and their click history) without a read-before-write.
Clicks and impressions are counted in the article's slot by one script each, which
also keeps the per-address windows that stop one client from inflating them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from engage.errors import UnknownLink
from engage.formulas import wilson_lower
from engage.store import Store, budgets, reactions, scripts, sites
from engage.store.keys import Keys
from engage.store.scripts import Status

REDIRECT_PREFIX = "/r/"
# How many same-section articles are considered when filling the box.
RELATED_CANDIDATES = 50


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
    result = scripts.result(raw)
    removed = {link["id"] for link in _decode(result.values[0] or None)} - seen
    # The index is global (outside the slot); idempotent, rewritten by every PUT.
    pipe = store.redis.pipeline(transaction=False)
    if stored:
        pipe.hset(keys.linkindex, mapping={link["id"]: article_id for link in stored})
    if removed:
        pipe.hdel(keys.linkindex, *removed)
    pipe.execute()
    store.forget(article_id)
    return [_public(link) for link in stored]


def curated(store: Store, article_id: str) -> list[dict[str, Any]]:
    raw = store.redis.get(store.keys.article_links(article_id))
    return [_public(link) for link in _decode(raw)]


@dataclass(frozen=True)
class Box:
    """An article's link box as stored: its section, its curated links, its site and how
    many links it shows (its site's links_shown)."""

    section: str | None
    curated: list[dict[str, Any]]
    site: str
    shown: int


def queue_box(pipe: Any, keys: Keys, article_id: str) -> None:
    """Queue on a pipeline what `take_box` reads back."""
    pipe.hmget(keys.article(article_id), "section", "site")
    pipe.get(keys.article_links(article_id))


def take_box(store: Store, replies: Iterator[Any]) -> Box:
    (section, site), raw = next(replies), next(replies)
    found = sites.site_or_default(store, site)
    return Box(section or None, [_public(link) for link in _decode(raw)], found["name"],
               int(found["links_shown"]))


def sections_to_fill(store: Store, boxes: Iterable[Box]) -> list[str]:
    """The sections whose related articles fill boxes with fewer links than they show."""
    return list(dict.fromkeys(box.section for box in boxes
                              if box.section and len(box.curated) < box.shown))


def queue_candidates(pipe: Any, keys: Keys, sections: list[str]) -> None:
    """Queue each section's newest articles, the related candidates; `take_candidates`
    reads them back."""
    for section in sections:
        pipe.zrevrange(keys.section(section), 0, RELATED_CANDIDATES - 1)


def take_candidates(replies: Iterator[Any], sections: list[str]) -> dict[str, list[str]]:
    return {section: list(next(replies)) for section in sections}


def fill(
    store: Store, boxes: dict[str, Box], candidates: dict[str, list[str]]
) -> dict[str, list[dict[str, Any]]]:
    """Each article's box: its curated links, then related articles of its section and
    site up to the links it shows (one round trip for their titles and counts, when any
    box needs them).

    Related articles are ranked by reader approval (the Wilson lower bound the stats rank
    by, so few votes rank below many at the same share), newest first among equals; an
    article without votes scores 0. They link straight to their URL (they have no click
    counter).
    """
    out = {aid: list(box.curated) for aid, box in boxes.items()}
    ids = list(dict.fromkeys(aid for section in candidates.values() for aid in section))
    if not ids:
        return out
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for aid in ids:
        pipe.hgetall(keys.article(aid))
        pipe.hgetall(keys.article_counts(aid))
    replies = iter(pipe.execute())
    # candidate -> (title, url, ranking score, site); gone articles drop out.
    found: dict[str, tuple[str, str, float, str]] = {}
    for aid in ids:
        meta, raw_counts = next(replies), next(replies)
        if meta:
            # Approval is the share of the article's first choice.
            choices = sites.reaction_set(store, meta.get("site"), meta.get("reactions"))["choices"]
            counts = reactions.normalize_counts(choices, raw_counts)
            found[aid] = (meta.get("title", ""), meta.get("url", ""),
                          wilson_lower(counts[choices[0]], sum(counts.values())) or 0.0,
                          sites.site_or_default(store, meta.get("site"))["name"])
    for article_id, box in boxes.items():
        wanted = box.shown - len(box.curated)
        if not box.section or wanted <= 0:
            continue
        exclude = {article_id} | {link["url"] for link in box.curated}
        ranked = sorted(
            (-found[aid][2], order, aid)
            for order, aid in enumerate(candidates.get(box.section, []))
            if aid in found and aid not in exclude and found[aid][1] not in exclude
            and found[aid][3] == box.site
        )
        out[article_id] += [
            {"id": "article:" + aid, "title": found[aid][0], "url": found[aid][1],
             "href": found[aid][1], "related": True}
            for _, _, aid in ranked[:wanted]
        ]
    return out


def for_articles(store: Store, article_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each article's box (see `fill`), in a fixed number of round trips however many
    articles: links and sections, the sections' candidates, their titles and counts."""
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        queue_box(pipe, store.keys, article_id)
    replies = iter(pipe.execute())
    boxes = {article_id: take_box(store, replies) for article_id in article_ids}
    sections = sections_to_fill(store, boxes.values())
    candidates: dict[str, list[str]] = {}
    if sections:
        pipe = store.redis.pipeline(transaction=False)
        queue_candidates(pipe, store.keys, sections)
        candidates = take_candidates(iter(pipe.execute()), sections)
    return fill(store, boxes, candidates)


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
    networks: budgets.Networks = budgets.NO_NETWORKS, reader: str | None = None,
) -> Click:
    """Resolve a link and count one click from `address` (a hashed address group);
    raises UnknownLink. A counted click is credited to `reader` by the aggregator, which
    files it in the reader's index from the article's `credits` (store/readers.py).

    A click is counted at most once per address group per link per CLICK_WINDOW, and
    up to each wider network's budget (`networks`, store/budgets.py): "duplicate" and
    "throttled" when not; `refused` ("bot" or "prefetch") says it must not count at all.
    Either way a click not counted is tallied as refused in the article's buckets, in
    the same script.
    """
    article_id: str | None = store.redis.hget(store.keys.linkindex, link_id_)
    if article_id is None:
        raise UnknownLink()
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
            keys.article_credits(article_id),
            keys.article_click_seen(article_id, address, link_id_),
            *(keys.article_click_seen(article_id, network, link_id_)
              for network in networks.values()),
        ],
        args=[link_id_, refused or "", hour_ttl, day_ttl, store.min_event_id(now),
              article_id, int(store.config["CLICK_WINDOW"]),
              budgets.click_limits(store.config, networks), reader or ""],
    )
    result = scripts.result(raw)
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
    result = scripts.result(raw)
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
