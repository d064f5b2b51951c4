"""The event log: one Redis stream per article and per poll, in that owner's slot.

Every accepted change is appended by the same Lua script that makes it, so the log
and the counts cannot disagree. Readers of the whole log (exports, webhooks) find
the streams through the article and poll indexes.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from engage.store import Store


def stream_keys(store: Store) -> list[str]:
    """Every event stream: one per registered article and per poll."""
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    pipe.zrange(keys.articles, 0, -1)
    pipe.zrange(keys.polls, 0, -1)
    article_ids, poll_ids = pipe.execute()
    return [keys.article_events(a) for a in article_ids] + [
        keys.poll_events(p) for p in poll_ids
    ]


def iso(epoch: float) -> str:
    """A time as the capped logs show it: UTC to the second, with a Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def newest(store: Store, key: str, count: int = 100) -> list[dict[str, Any]]:
    """The newest entries of a capped log stream (dead letters, the audit log), newest
    first, with when (from the entry id)."""
    raw = store.redis.xrevrange(key, count=count)
    return [{"id": entry_id, "at": iso(int(entry_id.split("-", 1)[0]) / 1000), **fields}
            for entry_id, fields in raw]


def decode(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """A stream entry as an event: its id, its time (from the id) and its fields."""
    millis = int(entry_id.split("-", 1)[0])
    return {"id": entry_id, "ts_ms": millis, **fields}


# -- reading the whole log in order ---------------------------------------------------
EXPORT_PAGE = 500
# Across many streams the first page of each is held at once; keep that bounded.
_FIRST_PAGE_BUDGET = 100_000
_PIPELINE_BATCH = 200


def _sort_key(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _matches(fields: dict[str, str], types: frozenset[str], article: str | None) -> bool:
    if article is not None and fields.get("article") != article:
        return False
    if not types:
        return True
    kind = fields.get("type", "")
    return kind in types or kind.split(".", 1)[0] in types


def iter_events(
    store: Store,
    since_ms: int | None = None,
    until_ms: int | None = None,
    types: Iterable[str] = (),
    article: str | None = None,
    page: int = EXPORT_PAGE,
) -> Iterator[dict[str, Any]]:
    """Every event in the range, oldest first, as `decode()` dicts.

    A k-way merge by stream id: each stream is read in XRANGE pages of `page` entries
    and only one page per stream is held, so memory is O(streams x page) however many
    events the range holds. `types` may name exact types or families ("reaction").
    The first page of every stream is fetched before this returns, so an unreachable
    Redis fails before a caller starts streaming a response.
    """
    if article is None:
        keys = stream_keys(store)
    else:  # the article's stream and its polls' streams
        poll_ids = store.redis.zrange(store.keys.article_polls(article), 0, -1)
        keys = [store.keys.article_events(article)] + [
            store.keys.poll_events(p) for p in poll_ids]
    wanted = frozenset(types)
    start = "-" if since_ms is None else str(int(since_ms))
    end = "+" if until_ms is None else str(int(until_ms))
    first = max(10, min(page, _FIRST_PAGE_BUDGET // max(1, len(keys))))
    buffers: list[deque[tuple[str, dict[str, str]]]] = []
    full: list[bool] = []
    for offset in range(0, len(keys), _PIPELINE_BATCH):
        pipe = store.redis.pipeline(transaction=False)
        for key in keys[offset : offset + _PIPELINE_BATCH]:
            pipe.xrange(key, start, end, count=first)
        for entries in pipe.execute():
            buffers.append(deque(entries))
            full.append(len(entries) == first)
    return _merge(store, keys, buffers, full, end, page, wanted, article)


def _merge(
    store: Store,
    keys: list[str],
    buffers: list[deque[tuple[str, dict[str, str]]]],
    full: list[bool],
    end: str,
    page: int,
    wanted: frozenset[str],
    article: str | None,
) -> Iterator[dict[str, Any]]:
    heap: list[tuple[int, int, int]] = []
    for index, buffer in enumerate(buffers):
        if buffer:
            heapq.heappush(heap, (*_sort_key(buffer[0][0]), index))
    while heap:
        _, _, index = heapq.heappop(heap)
        buffer = buffers[index]
        entry_id, fields = buffer.popleft()
        if not buffer and full[index]:
            more = store.redis.xrange(keys[index], "(" + entry_id, end, count=page)
            buffer.extend(more)
            full[index] = len(more) == page
        if buffer:
            heapq.heappush(heap, (*_sort_key(buffer[0][0]), index))
        if _matches(fields, wanted, article):
            yield decode(entry_id, fields)
