"""Reactions ("Do you like this article?"): one reader, one vote, per article."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engage import errors
from engage.store import Store, scripts, shards
from engage.store.keys import Keys


@dataclass(frozen=True)
class Reactions:
    counts: dict[str, int]
    mine: str | None
    reason: str | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def normalize_counts(store: Store, flat_or_map: Any) -> dict[str, int]:
    """Configured choices in order, zero-filled; counts of retired choices are hidden."""
    if isinstance(flat_or_map, dict):
        raw = flat_or_map
    else:
        raw = dict(zip(flat_or_map[::2], flat_or_map[1::2], strict=True))
    return {choice: max(0, int(raw.get(choice, 0))) for choice in store.config["CHOICES"]}


def _split_mine(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    choice, _, reason = value.partition("|")
    return choice, reason or None


def read(store: Store, article_id: str, reader: str | None = None) -> Reactions | None:
    """Counts (and the reader's vote) in one round trip; None for an unknown article.

    Anonymous reads come from the near cache (store/nearcache.py) when it can vouch
    for them: no round trip at all.
    """
    if not reader:
        return read_many(store, [article_id])[article_id]
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    # Every registered article has a title: one HMGET says "exists" and "sharded?".
    pipe.hmget(keys.article(article_id), ["title", "shards"])
    pipe.hgetall(keys.article_counts(article_id))
    pipe.hget(keys.article_voters(article_id), reader)
    replies = pipe.execute()
    title, shard_count = replies[0]
    if title is None:
        return None
    if shard_count:
        counts, value = shards.read(store, article_id, int(shard_count), replies[1], reader)
        mine, reason = _split_mine(value)
        return Reactions(normalize_counts(store, counts), mine, reason)
    mine, reason = _split_mine(replies[2])
    return Reactions(normalize_counts(store, replies[1]), mine, reason)


def read_many(
    store: Store, article_ids: list[str], reader: str | None = None
) -> dict[str, Reactions | None]:
    """Counts (and the reader's votes) of many articles in one pipeline (split per node
    on a cluster); anonymous counts from the near cache when it can vouch for them."""
    if not reader and store.near is not None:
        found = store.near.read_through(
            article_ids, lambda client, missing: _load_anonymous(store, client, missing))
        if found is not None:
            return found
    return {article_id: result for article_id, (result, _) in
            _fetch(store, store.redis, article_ids, reader).items()}


def _load_anonymous(store: Store, client: Any, article_ids: list[str]
                    ) -> dict[str, tuple[Reactions | None, tuple[str, ...] | None]]:
    """The near cache's loader: counts read through its tracked connection, with the
    keys each depends on. Sharded counts are summed from shards read elsewhere, so
    they are returned but not kept."""
    keys = store.keys
    return {
        article_id: (result, None if sharded else
                     (keys.article(article_id), keys.article_counts(article_id)))
        for article_id, (result, sharded) in
        _fetch(store, client, article_ids, None).items()
    }


def _fetch(
    store: Store, client: Any, article_ids: list[str], reader: str | None
) -> dict[str, tuple[Reactions | None, bool]]:
    """Each article's reactions and whether it is sharded; one pipeline on `client`."""
    keys = store.keys
    step = 3 if reader else 2
    pipe = client.pipeline(transaction=False)
    for article_id in article_ids:
        # As in read(): the title says the article exists, in the same command as shards.
        pipe.hmget(keys.article(article_id), ["title", "shards"])
        pipe.hgetall(keys.article_counts(article_id))
        if reader:
            pipe.hget(keys.article_voters(article_id), reader)
    replies = pipe.execute()
    out: dict[str, tuple[Reactions | None, bool]] = {}
    sharded: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, article_id in enumerate(article_ids):
        (title, shard_count), counts = replies[step * index: step * index + 2]
        if title is None:
            out[article_id] = (None, False)
            continue
        if shard_count and reader:
            # A reader's vote on a sharded article lives in its shard: the rare slow path.
            out[article_id] = (read(store, article_id, reader), True)
            continue
        mine, reason = _split_mine(replies[step * index + 2] if reader else None)
        out[article_id] = (Reactions(normalize_counts(store, counts), mine, reason),
                           bool(shard_count))
        if shard_count:
            sharded[article_id] = (int(shard_count), counts)
    if sharded:
        for article_id, counts in shards.sum_counts(store, sharded).items():
            out[article_id] = (Reactions(normalize_counts(store, counts), None), True)
    return out


def vote(
    store: Store,
    article_id: str,
    reader: str,
    address: str,
    choice: str | None,
    reason: str | None = None,
) -> tuple[Reactions, bool]:
    """Cast, move or withdraw (choice None) a reader's vote: one script, one round trip.

    Returns the new counts and whether anything changed. Raises UnknownArticle or
    Throttled. Repeating a call is a no-op, so a retried request cannot double-count.
    """
    keys = store.keys
    now = store.now()
    hour_ttl, day_ttl = store.bucket_ttls()
    args = [
        reader,
        choice or "",
        (reason or "") if choice else "",
        store.config["THROTTLE_VOTES"],
        store.config["THROTTLE_WINDOW"],
        hour_ttl,
        day_ttl,
        store.min_event_id(now),
        article_id,
    ]
    shard_count = shards.known_shards(store, article_id)
    if not shard_count:
        raw = store.run("vote_reaction", keys=vote_keys(keys, article_id, address, now),
                        args=args)
        result = scripts.parse(raw)
        if result.status == scripts.SHARDED:
            shard_count = int(result.values[0])
            shards.learn(store, article_id, shard_count)
        elif result.status == scripts.SHARD_MOVING:
            shard_count = shards.wait_for_move(store, article_id)
    totals: Any = None
    if shard_count:
        # A viral article (store/shards.py): the same script in the reader's shard.
        index = shards.shard_of(reader, shard_count)
        shard = keys.shard_id(article_id, index)
        raw = store.run("vote_reaction", keys=vote_keys(keys, shard, address, now), args=args)
        result = scripts.parse(raw)
        if result.status >= 0:
            totals = shards.totals_after_vote(
                store, article_id, shard_count, index, result.values[1:])
    if result.status == scripts.UNKNOWN:
        raise errors.UnknownArticle()
    if result.status == scripts.THROTTLED:
        raise errors.Throttled(int(result.values[0]))
    mine, mine_reason = _split_mine(result.values[0])
    counts = normalize_counts(store, totals if totals is not None else result.values[1:])
    if result.status == 1 and not shard_count:
        shards.note_accepted(store, article_id)
    if result.status == 1 and store.near is not None:
        store.near.forget(article_id)
    return Reactions(counts, mine, mine_reason), result.status == 1


def vote_keys(keys: Keys, article_id: str, address: str, now: datetime) -> list[str]:
    """KEYS of `vote_reaction`, for an article or one of its shards (`keys.shard_id`)."""
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
    ]


def reasons(store: Store, article_id: str) -> dict[str, int]:
    raw = store.redis.hgetall(store.keys.article_reasons(article_id))
    shard_count = store.redis.hget(store.keys.article(article_id), "shards")
    if shard_count:
        base = {article_id: (int(shard_count), raw)}
        raw = shards.sum_counts(store, base, "reasons")[article_id]
    return {reason: int(n) for reason, n in raw.items() if int(n) > 0}
