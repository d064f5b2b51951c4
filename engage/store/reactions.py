"""Reactions ("Do you like this article?"): one reader, one vote, per article."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from engage.store import Store, budgets, scripts, sites
from engage.store.keys import Keys
from engage.store.scripts import Status

# How a vote reached engage: the widget, a newsletter's vote link, the widget's form
# without JavaScript, an AMP page's form. Each vote and its event carry one.
CHANNELS = ("web", "email", "nojs", "amp")


@dataclass(frozen=True)
class Reactions:
    counts: dict[str, int]
    mine: str | None
    reason: str | None = None
    reaction_set: dict[str, Any] | None = None  # what readers may choose (sites.py)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @cached_property
    def counts_json(self) -> str:
        """What anyone may see of them (CountsSchema), encoded once: the process keeps
        them for every anonymous batch read within COUNTS_CACHE_SECONDS."""
        return json.dumps({"counts": self.counts, "total": self.total}, separators=(",", ":"))


def normalize_counts(choices: list[str], flat_or_map: Any) -> dict[str, int]:
    """The article's current choices in order, zero-filled; counts of retired choices
    are kept in Redis (and in stats and exports) but not shown."""
    if isinstance(flat_or_map, dict):
        raw = flat_or_map
    else:
        raw = dict(zip(flat_or_map[::2], flat_or_map[1::2], strict=True))
    return {choice: max(0, int(raw.get(choice, 0))) for choice in choices}


def _split_mine(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    choice, _, reason = value.partition("|")
    return choice, reason or None


def read(store: Store, article_id: str, reader: str | None = None) -> Reactions | None:
    """Counts (and the reader's vote) in one round trip; None for an unknown article."""
    return read_many(store, [article_id], reader)[article_id]


def read_many(
    store: Store, article_ids: list[str], reader: str | None = None
) -> dict[str, Reactions | None]:
    """Counts (and the reader's votes) of many articles in one pipeline (split per node
    on a cluster); None for an unknown article.

    Anonymous counts come from the store's per-process cache when it has them (at most
    COUNTS_CACHE_SECONDS old); a reader's read always goes to Redis, so it shows that
    reader's own vote and the counts it moved. Unknown articles are not cached: one
    created a moment later is found at once.
    """
    if reader is not None:
        return _fetch(store, article_ids, reader)
    kept: dict[str, Reactions | None] = store.counts_cache.get_many(article_ids)
    missing = [aid for aid in article_ids if aid not in kept]
    if not missing:
        return kept
    fetched = _fetch(store, missing, None)
    store.counts_cache.put_many({aid: r for aid, r in fetched.items() if r is not None})
    return kept | fetched


def _fetch(
    store: Store, article_ids: list[str], reader: str | None
) -> dict[str, Reactions | None]:
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        queue_read(pipe, store.keys, article_id, reader)
    replies = iter(pipe.execute())
    return {article_id: take_read(store, replies, reader) for article_id in article_ids}


def queue_read(pipe: Any, keys: Keys, article_id: str, reader: str | None = None) -> None:
    """Queue on a pipeline what `take_read` reads back: whether the article exists, its
    site and own reaction set, its counts and the reader's vote."""
    pipe.hmget(keys.article(article_id), "title", "site", "reactions")
    pipe.hgetall(keys.article_counts(article_id))
    if reader:
        pipe.hget(keys.article_voters(article_id), reader)


def take_read(store: Store, replies: Iterator[Any], reader: str | None = None
              ) -> Reactions | None:
    """The replies of one `queue_read`, taken from the pipeline's; None for an unknown
    article."""
    (title, site, own), counts = next(replies), next(replies)
    choice, reason = _split_mine(next(replies) if reader else None)
    if title is None:
        return None
    reaction_set = sites.reaction_set(store, site, own)
    return Reactions(normalize_counts(reaction_set["choices"], counts), choice, reason,
                     reaction_set)


def vote(
    store: Store,
    article_id: str,
    reader: str,
    address: str,
    choice: str | None,
    reason: str | None = None,
    networks: budgets.Networks = budgets.NO_NETWORKS,
    channel: str = "web",
    erasing: bool = False,
) -> tuple[Reactions, bool]:
    """Cast, move or withdraw (choice None) a reader's vote: one script, one round trip,
    whichever of CHANNELS it came through.

    `address` is the hash of the client's address group and `networks` those of its
    wider networks (store/budgets.py): a vote spends from each of their budgets.
    Returns the new counts and whether anything changed. Raises UnknownArticle,
    InvalidChoice (a choice or reason outside the article's set) or Throttled.
    Repeating a call is a no-op, so a retried request cannot double-count.
    `erasing` withdraws for an erasure (store/readers.py): no budget, no reader logged.
    """
    now = store.now()
    raw = store.run(
        "vote_reaction",
        keys=vote_keys(store.keys, article_id, address, now, networks),
        args=vote_args(store, article_id, reader, choice, reason, now, networks, channel,
                       erasing),
    )
    store.forget(article_id)
    result = scripts.result(raw)
    mine, mine_reason = _split_mine(result.values[0])
    reaction_set = sites.decode_set(result.values[1])
    counts = normalize_counts(reaction_set["choices"], result.values[2:])
    return (Reactions(counts, mine, mine_reason, reaction_set),
            result.status == Status.CHANGED)


def vote_args(
    store: Store, article_id: str, reader: str, choice: str | None, reason: str | None,
    now: datetime, networks: budgets.Networks = budgets.NO_NETWORKS, channel: str = "web",
    erasing: bool = False,
) -> list[Any]:
    """ARGV of `vote_reaction` (`vote`'s arguments, at `now`)."""
    hour_ttl, day_ttl = store.bucket_ttls()
    return [reader, choice or "", (reason or "") if choice else "",
            "" if erasing else budgets.vote_limits(store.config, networks),
            store.config["THROTTLE_WINDOW"], hour_ttl, day_ttl,
            store.min_event_id(now), article_id, channel, "1" if erasing else "",
            sites.sets_table(store)]


def vote_keys(
    keys: Keys, article_id: str, address: str, now: datetime,
    networks: budgets.Networks = budgets.NO_NETWORKS,
) -> list[str]:
    """KEYS of `vote_reaction`."""
    owner = keys.article(article_id)
    return [
        owner,
        keys.article_counts(article_id),
        keys.article_reasons(article_id),
        keys.article_voters(article_id),
        keys.article_throttle(article_id, address),
        keys.article_events(article_id),
        keys.hour_bucket(owner, now),
        keys.day_bucket(owner, now),
        *(keys.article_throttle(article_id, network) for network in networks.values()),
    ]


def reasons(store: Store, article_id: str) -> dict[str, int]:
    raw = store.redis.hgetall(store.keys.article_reasons(article_id))
    return {reason: int(n) for reason, n in raw.items() if int(n) > 0}
