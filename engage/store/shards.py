"""Viral articles: one article's reactions spread over several cluster slots.

An article's vote script runs in the article's slot, so one article's votes are capped
by one Redis core however big the cluster is. A sharded article keeps N shards, each
keyed like a pseudo-article `A#i` (`P:a:{A#i}`, `P:a:{A#i}:counts`, `:voters`, ...), so
each lives in its own slot and the shards spread over the cluster's primaries.

Which shard: crc32(reader hash) mod N. A reader always lands in the same shard, so the
one-vote dedupe still lives in one place and the ordinary vote script runs there
unchanged (its existence check finds the shard's own hash). Counts are the sum of the
article's own counts and every shard's; reads get them with one pipeline, which
redis-py sends as one round trip per node.

Turning sharding on (`enable`), safely while votes arrive:
1. SHARD_BEGIN marks the article `sharding`: its vote script now refuses every vote
   with "moving" (callers wait a moment and retry; see MOVE_WAIT).
2. Every voter recorded so far is copied (HSETNX) into the voters of the shard its
   hash picks; their counts stay in the article's own counts, frozen from now on.
   A later change by such a reader moves -1/+1 inside its shard, so sums stay exact.
3. SHARD_COMMIT records `shards = N`: the article's script answers "sharded" and
   votes go to the shards from then on. Nothing ever writes the article's own
   counts or voters again, so no reader can be counted both there and in a shard.
One process copies at a time (a lease key, `P:a:{A}:shardlock`). If it dies between
1 and 3, the next vote that waits in vain for the switch and finds no lease finishes
the copy itself (each step is idempotent), as does running `enable` again.
Sharding is one-way and N is fixed per article (changing N would move readers
between shards); `P:sharded` lists sharded articles.

Automatic: with SHARD_AUTO_RATE > 0 each app process counts the votes it accepts per
article; an article crossing that rate (per process) is sharded with SHARDS shards.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import zlib
from collections import OrderedDict
from typing import Any
from weakref import WeakKeyDictionary

from engage import errors
from engage.store import UNAVAILABLE, Store, scripts
from engage.store.keys import Keys

logger = logging.getLogger(__name__)

# How long a vote waits for a migration to finish before answering 503 (seconds).
MOVE_WAIT = 3.0
# Seconds a copier holds its lease; a copy that takes longer lets a second copier in,
# which is harmless (copying is idempotent), only wasted work.
COPY_LEASE = 30
MAX_SHARDS = 1024
# How long a vote answer may reuse this process's copy of the other shards' counts (s).
OTHERS_TTL = 1.0
_COPY_BATCH = 500
_KNOWN_LIMIT = 10_000


def shard_of(reader: str, shards: int) -> int:
    return zlib.crc32(reader.encode()) % shards


def adopt_keys(keys: Keys, article_id: str, index: int) -> list[str]:
    shard = keys.shard_id(article_id, index)
    return [keys.article(shard), keys.article_voters(shard)]


def state_keys(keys: Keys, article_id: str) -> list[str]:
    """KEYS of `shard_begin` and `shard_commit`."""
    return [keys.article(article_id)]


# -- what this process knows (sharding is one-way, so a positive answer never expires) --
class _Known:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.shards: OrderedDict[str, int] = OrderedDict()
        self.rates: dict[str, tuple[int, int]] = {}  # article -> (second, votes in it)
        # article -> (valid until, [own counts, shard 0 counts, shard 1 counts, ...])
        self.others: dict[str, tuple[float, list[dict[str, int]]]] = {}

    def get(self, article_id: str) -> int:
        # Every vote asks; one dict read is atomic, only writers need the lock.
        return self.shards.get(article_id, 0)

    def put(self, article_id: str, shards: int) -> None:
        with self.lock:
            self.shards[article_id] = shards
            self.shards.move_to_end(article_id)
            while len(self.shards) > _KNOWN_LIMIT:
                self.shards.popitem(last=False)

    def tick(self, article_id: str) -> int:
        """Votes accepted for the article in the current second, this one included."""
        second = int(time.monotonic())
        with self.lock:
            last, count = self.rates.get(article_id, (second, 0))
            count = count + 1 if last == second else 1
            if len(self.rates) > _KNOWN_LIMIT:
                self.rates.clear()
            self.rates[article_id] = (second, count)
            return count


_KNOWN: WeakKeyDictionary[Store, _Known] = WeakKeyDictionary()
_KNOWN_LOCK = threading.Lock()


def _known(store: Store) -> _Known:
    known = _KNOWN.get(store)
    if known is None:  # once per store: only creating it needs the lock
        with _KNOWN_LOCK:
            known = _KNOWN.get(store)
            if known is None:
                known = _KNOWN[store] = _Known()
    return known


def known_shards(store: Store, article_id: str) -> int:
    """Shard count this process has seen for the article (0: not sharded, or not seen)."""
    return _known(store).get(article_id)


def learn(store: Store, article_id: str, shards: int) -> None:
    if shards > 0:
        _known(store).put(article_id, shards)


# -- turning it on -------------------------------------------------------------------
def enable(store: Store, article_id: str, shards: int | None = None) -> int:
    """Shard an article (idempotent; finishes an interrupted run). Returns its count."""
    wanted = int(shards or store.config["SHARDS"])
    if not 2 <= wanted <= MAX_SHARDS:
        raise ValueError(f"shards must be between 2 and {MAX_SHARDS}")
    keys = store.keys
    status, count = _state(store, "shard_begin", article_id, wanted)
    if status == 2:
        learn(store, article_id, count)
        return count
    # One copier at a time; the lease lets a later vote finish a copier that died.
    lease = keys.article_part(article_id, "shardlock")
    token = secrets.token_hex(8)
    if not store.redis.set(lease, token, nx=True, ex=COPY_LEASE):
        return wait_for_move(store, article_id)
    try:
        store.redis.zadd(keys.sharded, {article_id: count})
        _copy_voters(store, article_id, count)
        _state(store, "shard_commit", article_id, count)
    finally:
        if store.redis.get(lease) == token:
            store.redis.delete(lease)
    learn(store, article_id, count)
    return count


def _state(store: Store, name: str, article_id: str, shards: int) -> tuple[int, int]:
    raw = store.run(name, keys=state_keys(store.keys, article_id), args=[shards])
    result = scripts.parse(raw)
    if result.status == scripts.UNKNOWN:
        raise errors.UnknownArticle()
    return result.status, int(result.values[0])


def _copy_voters(store: Store, article_id: str, shards: int) -> None:
    """Copy every recorded voter into its shard; every shard gets its hash even if empty."""
    pending: dict[int, list[str]] = {i: [] for i in range(shards)}
    created: set[int] = set()
    voters = store.keys.article_voters(article_id)
    for reader, value in store.redis.hscan_iter(voters, count=_COPY_BATCH):
        index = shard_of(reader, shards)
        pending[index] += [reader, value]
        if len(pending[index]) >= 2 * _COPY_BATCH:
            _adopt(store, article_id, index, pending[index])
            created.add(index)
            pending[index] = []
    for index, pairs in pending.items():
        if pairs or index not in created:
            _adopt(store, article_id, index, pairs)


def _adopt(store: Store, article_id: str, index: int, pairs: list[str]) -> None:
    # One script call per shard batch, not a cluster pipeline of them: this runs once
    # per article, off the hot path, and each call reloads its script after NOSCRIPT.
    store.run("shard_adopt", keys=adopt_keys(store.keys, article_id, index),
              args=[article_id, index, *pairs])


def count(store: Store, article_id: str) -> int | None:
    """The article's shard count once sharding is on (0: not sharded); None for an
    unknown article (its title says it exists, read in the same command)."""
    title, shards = store.redis.hmget(store.keys.article(article_id), ["title", "shards"])
    return None if title is None else int(shards or 0)


def sharded_articles(store: Store) -> dict[str, int]:
    return {a: int(n) for a, n in store.redis.zrange(store.keys.sharded, 0, -1,
                                                      withscores=True)}


# -- votes -------------------------------------------------------------------------
def totals_after_vote(
    store: Store, article_id: str, shards: int, index: int, fresh: list[Any]
) -> dict[str, int]:
    """The article's counts after a vote in shard `index`, whose script returned `fresh`.

    The other parts (the article's own frozen counts and the other shards) come from
    this process's copy when it is younger than OTHERS_TTL, else from one pipeline (one
    round trip per node). So a vote answer may lag other shards' votes by up to that
    long, like a cached read; the vote itself is exact either way.
    """
    known = _known(store)
    now = time.monotonic()
    with known.lock:
        cached = known.others.get(article_id)
    if cached is None or cached[0] < now or len(cached[1]) != shards + 1:
        keys = store.keys
        pipe = store.redis.pipeline(transaction=False)
        pipe.hgetall(keys.article_counts(article_id))
        for key in shard_parts(keys, article_id, shards, "counts"):
            pipe.hgetall(key)
        parts = [_ints(counts) for counts in pipe.execute()]
        cached = (now + OTHERS_TTL, parts)
    parts = list(cached[1])
    parts[index + 1] = _flat_to_ints(fresh)
    with known.lock:
        known.others[article_id] = (cached[0], parts)
        if len(known.others) > _KNOWN_LIMIT:
            known.others.clear()
    totals: dict[str, int] = {}
    for part in parts:
        _add(totals, part)
    return totals


def wait_for_move(store: Store, article_id: str) -> int:
    """A vote met a migration: wait for it to finish; the shard count, else 503.

    A migration whose copier is gone (no lease) is finished here, so a crash in the
    middle cannot leave an article refusing votes for longer than COPY_LEASE.
    """
    deadline = time.monotonic() + MOVE_WAIT
    keys = store.keys
    while time.monotonic() < deadline:
        time.sleep(0.02)
        done = store.redis.hget(keys.article(article_id), "shards")
        if done:
            learn(store, article_id, int(done))
            return int(done)
    if not store.redis.exists(keys.article_part(article_id, "shardlock")):
        return enable(store, article_id)
    raise errors.StorageUnavailable()


def note_accepted(store: Store, article_id: str) -> None:
    """Count a vote for the automatic switch; shard the article when it runs hot."""
    rate = float(store.config.get("SHARD_AUTO_RATE") or 0)
    if rate <= 0:
        return
    if _known(store).tick(article_id) == int(rate) + 1:
        try:
            enable(store, article_id)
        except (errors.StorageUnavailable, *UNAVAILABLE) as exc:
            # The vote itself is stored; the switch is retried at the next crossing
            # (or finished by a waiting vote if it got half way).
            logger.warning("sharding %s automatically failed: %s", article_id, exc)


# -- reads -------------------------------------------------------------------------
def _flat_to_ints(flat: list[Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}


def _ints(part: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in part.items()}


def _add(total: dict[str, int], part: dict[str, Any]) -> None:
    for name, value in part.items():
        total[name] = total.get(name, 0) + int(value)


def shard_parts(keys: Keys, article_id: str, shards: int, part: str) -> list[str]:
    return [keys.article_part(keys.shard_id(article_id, i), part) for i in range(shards)]


def sum_counts(
    store: Store, bases: dict[str, tuple[int, dict[str, Any]]], part: str = "counts"
) -> dict[str, dict[str, int]]:
    """Each sharded article's own hash of `part` plus every shard's, for many articles
    in one pipeline (one round trip per node). `bases`: id -> (shards, own hash)."""
    pipe = store.redis.pipeline(transaction=False)
    for article_id, (shards, _) in bases.items():
        learn(store, article_id, shards)
        for key in shard_parts(store.keys, article_id, shards, part):
            pipe.hgetall(key)
    replies = iter(pipe.execute())
    out: dict[str, dict[str, int]] = {}
    for article_id, (shards, base) in bases.items():
        total: dict[str, int] = {}
        _add(total, base)
        for _ in range(shards):
            _add(total, next(replies))
        out[article_id] = total
    return out


def read(
    store: Store, article_id: str, shards: int, base: dict[str, Any], reader: str | None
) -> tuple[dict[str, int], str | None]:
    """A sharded article's counts and, with a reader, that reader's vote: one pipeline."""
    learn(store, article_id, shards)
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for key in shard_parts(keys, article_id, shards, "counts"):
        pipe.hgetall(key)
    if reader:
        shard = keys.shard_id(article_id, shard_of(reader, shards))
        pipe.hget(keys.article_voters(shard), reader)
    replies = pipe.execute()
    total: dict[str, int] = {}
    _add(total, base)
    for counts in replies[:shards]:
        _add(total, counts)
    return total, (replies[shards] if reader else None)
