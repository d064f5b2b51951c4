"""Cross-article aggregates, kept from the event streams (never by a vote's script).

A vote touches its article's slot only. Rankings, section and site figures are kept
under `keys.agg(...)` (one hash tag, so one cluster slot) by `Aggregator.step()`, which
reads every article and poll stream from the position last applied and hands the new
entries to the `aggregate` script. That script applies a stream's entries only when
the position the reader started from is still the stored one, so any number of
aggregators (and a rebuild) can run at once without counting an entry twice.

Lag: one pass reads every stream; `engage worker` and `engage serve` run a pass every
AGGREGATE_INTERVAL seconds (default 1), so a vote shows in the rankings within a pass
and a half (documented in docs/dashboard.md as at most 5 s).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from engage.store import Store, cluster, events, readers, sites, windows

READ_BATCH = 100        # streams per XREAD
ENTRIES_PER_STREAM = 200
APPLY_EVENTS = 500      # entries per script call: keeps each call short, as Redis runs it alone
FEED_LENGTH = 1000
_FEED_FIELDS = ("type", "article", "poll", "choice", "previous", "reason", "link")
_SEEN_BATCH = 1000


def _stamp(entry_id: str, fields: dict[str, str]) -> str:
    """The hour bucket of an entry: the one its script bumped, else its id's time."""
    if fields.get("hour"):
        return fields["hour"]
    millis = int(entry_id.split("-", 1)[0])
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y%m%d%H")


class Aggregator:
    """Reads new stream entries and applies them; keeps its read positions in memory
    (the applied positions in Redis are the truth, reloaded whenever they differ)."""

    def __init__(self, store: Store, feed: bool = True) -> None:
        self.store = store
        self.feed_length = FEED_LENGTH if feed else 0
        self.positions: dict[str, str] = {}

    def _streams(self) -> list[str]:
        keys = events.stream_keys(self.store)
        fresh = [k for k in keys if k not in self.positions]
        seen = self.store.keys.agg("seen")
        for i in range(0, len(fresh), _SEEN_BATCH):
            batch = fresh[i:i + _SEEN_BATCH]
            for key, pos in zip(batch, self.store.redis.hmget(seen, batch), strict=True):
                self.positions[key] = pos or "0-0"
        return keys

    def _read(self, batch: list[str]) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
        redis = self.store.redis
        if cluster.is_cluster(redis):
            # One XREAD per stream: a cluster refuses one over several slots.
            pipe = redis.pipeline(transaction=False)
            for key in batch:
                pipe.xread({key: self.positions[key]}, count=ENTRIES_PER_STREAM)
            replies = [item for reply in pipe.execute() for item in (reply or [])]
        else:
            replies = redis.xread({k: self.positions[k] for k in batch},
                                  count=ENTRIES_PER_STREAM) or []
        return [(stream, entries) for stream, entries in replies if entries]

    def step(self) -> int:
        """One pass over every stream, then the rolling windows moved on to the current
        hour; returns how many entries were applied."""
        keys = self._streams()
        applied = 0
        for i in range(0, len(keys), READ_BATCH):
            found = self._read(keys[i:i + READ_BATCH])
            while found:
                applied += self._apply(found)
                found = self._read([stream for stream, _ in found])
        windows.roll(self.store, self.store.now())
        return applied

    def catch_up(self, streams: list[str]) -> None:
        """Apply everything `streams` hold now, so entries may then be removed from them
        (store/readers.py) without the aggregates missing them."""
        seen = self.store.redis.hmget(self.store.keys.agg("seen"), streams)
        self.positions.update({k: pos or "0-0" for k, pos in zip(streams, seen, strict=True)})
        found = self._read(streams)
        while found:
            self._apply(found)
            found = self._read([stream for stream, _ in found])

    def _sections(self, article_ids: Iterable[str]
                  ) -> tuple[dict[str, str], dict[str, tuple[str, str, int]]]:
        """Each article's section, and where its figures are kept: its site's key base,
        its choices (the approving one first) and 1 when they are its own set."""
        store = self.store
        ids = sorted(set(article_ids))
        pipe = store.redis.pipeline(transaction=False)
        for article_id in ids:
            pipe.hmget(store.keys.article(article_id), "section", "site", "reactions")
        sections, owners = {}, {}
        default = store.config["DEFAULT_SITE"]
        for a, (section, site, own) in zip(ids, pipe.execute(), strict=True):
            sections[a] = section or ""
            choices = sites.reaction_set(store, site, own)["choices"]
            owners[a] = (store.keys.agg_site(site, default), ",".join(choices), 1 if own else 0)
        return sections, owners

    def _apply(self, found: list[tuple[str, list[tuple[str, dict[str, str]]]]]) -> int:
        # A separate step: the readers' index is kept from the same entries, so no vote
        # waits on a write in the reader's own slot (store/readers.py); filed before the
        # entries are applied, so none is applied and never filed.
        erased = readers.index_events(self.store, found)
        sections, owners = self._sections(
            fields.get("article", "") for _, entries in found for _, fields in entries
            if fields.get("article"))
        store, keys = self.store, self.store.keys
        hour_ttl, day_ttl = store.bucket_ttls()
        batch: list[list[Any]] = []
        named: set[str] = set()
        size = applied = 0

        def flush() -> None:
            stale = store.run("aggregate", keys=[keys.agg("seen")], args=[
                keys.agg_base, ",".join(store.config["CHOICES"]), hour_ttl, day_ttl,
                self.feed_length, json.dumps(batch, separators=(",", ":")),
                ",".join(windows.NAMES),
                json.dumps({a: owners[a] for a in named}, separators=(",", ":"))])
            for stream in stale:  # another aggregator got there first: take its position
                self.positions[stream] = store.redis.hget(keys.agg("seen"), stream) or "0-0"

        for stream, entries in found:
            rows = []
            for entry_id, fields in entries:
                article = fields.get("article", "")
                if article in owners:
                    named.add(article)
                row = [entry_id, fields.get("type", ""), article, sections.get(article, ""),
                       _stamp(entry_id, fields), fields.get("choice", ""),
                       fields.get("previous", "")]
                for name in _FEED_FIELDS:
                    if fields.get(name):
                        row += [name, fields[name]]
                rows.append(row)
            batch.append([stream, self.positions[stream], rows])
            self.positions[stream] = entries[-1][0]
            size += len(rows)
            applied += len(rows)
            if size >= APPLY_EVENTS:
                flush()
                batch, size, named = [], 0, set()
        if batch:
            flush()
        readers.withdraw_erased(store, erased)
        return applied


def clear(store: Store) -> int:
    """Delete every aggregate key (the applied positions too)."""
    found = list(store.redis.scan_iter(match=store.keys.agg("*"), count=1000))
    return sum(store.redis.delete(*found[i:i + 500]) for i in range(0, len(found), 500))


def rebuild(store: Store) -> int:
    """Recompute every aggregate from the event streams; returns the entries replayed.

    Idempotent: it starts from nothing each time. Aggregators running meanwhile notice
    their positions are gone and follow the rebuild's, so nothing is counted twice.
    """
    clear(store)
    aggregator = Aggregator(store, feed=False)
    total = 0
    while applied := aggregator.step():
        total += applied
    return total


# -- reads -----------------------------------------------------------------------------
def feed_since(store: Store, cursor: str | None, limit: int) -> list[tuple[str, dict[str, str]]]:
    """The newest feed entries after `cursor` (all of the newest without one), newest
    first."""
    low = "(" + cursor if cursor else "-"
    try:
        entries: list[tuple[str, dict[str, str]]] = store.redis.xrevrange(
            store.keys.agg("feed"), "+", low, count=limit)
    except Exception as exc:  # a malformed cursor from the page: start afresh
        if "Invalid stream ID" not in str(exc):
            raise
        entries = store.redis.xrevrange(store.keys.agg("feed"), "+", "-", count=limit)
    return entries
