"""What the widget shows anyone of an article on page load: its counts, links and polls.

Read for many articles at once in at most three round trips however many there are: the
articles' own keys (counts, section, curated links, poll ids); then their polls and the
newest articles of the sections whose boxes need filling; then those candidates' titles
and counts. Polls and related articles live under other hash tags, found through the
article's own keys, so no single round trip can hold them all.

Kept by the process like anonymous counts (`Store.widget_cache`): at most
COUNTS_CACHE_SECONDS old, dropped by a write to the article in this process
(`Store.forget`), and never past the moment one of its open polls closes. What is kept
is the caller's shape of it (the API's encoded JSON), made once per fetch, not per request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from engage.store import Store, links, polls, reactions

T = TypeVar("T")


@dataclass(frozen=True)
class WidgetArticle:
    reactions: reactions.Reactions
    links: list[dict[str, Any]]  # curated, then related articles (links.fill)
    polls: list[polls.Poll]  # oldest first, judged at the moment read

    def first_close_ms(self) -> float:
        """When the first of its open polls closes (epoch ms); infinity if none will."""
        return min((polls.epoch_ms(datetime.fromisoformat(poll.closes_at))
                    for poll in self.polls if not poll.closed and poll.closes_at),
                   default=math.inf)


@dataclass(frozen=True)
class _Kept:
    shaped: Any
    until_ms: float  # a poll closes then: what was shaped before shows it open


def read_many(
    store: Store, article_ids: list[str], shape: Callable[[WidgetArticle], T]
) -> dict[str, T | None]:
    """Each article as `shape` makes it of its WidgetArticle, from this process's cache
    when it holds a current one; None for an unknown article (never kept, so one created
    a moment later is found at once)."""
    now = store.now()
    now_ms = polls.epoch_ms(now)
    kept: dict[str, _Kept | None] = store.widget_cache.get_many(article_ids)
    missing = [aid for aid in article_ids if (entry := kept.get(aid)) is None
               or now_ms >= entry.until_ms]
    if missing:
        fresh = {aid: _Kept(shape(found), found.first_close_ms())
                 for aid, found in fetch(store, missing, now).items() if found is not None}
        store.widget_cache.put_many(fresh)
        kept.update({aid: fresh.get(aid) for aid in missing})
    return {aid: entry.shaped if (entry := kept.get(aid)) else None for aid in article_ids}


def fetch(store: Store, article_ids: list[str], now: datetime) -> dict[str, WidgetArticle | None]:
    """The articles from Redis (see the module's docstring); None for an unknown one."""
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        reactions.queue_read(pipe, keys, article_id)
        links.queue_box(pipe, keys, article_id)
        polls.queue_article_polls(pipe, keys, article_id)
    replies = iter(pipe.execute())
    counts: dict[str, reactions.Reactions] = {}
    boxes: dict[str, links.Box] = {}
    poll_ids: dict[str, list[str]] = {}
    for article_id in article_ids:
        found = reactions.take_read(store, replies)
        box, ids = links.take_box(store, replies), list(next(replies))
        if found is not None:
            counts[article_id], boxes[article_id], poll_ids[article_id] = found, box, ids

    wanted = list(dict.fromkeys(poll_id for ids in poll_ids.values() for poll_id in ids))
    sections = links.sections_to_fill(store, boxes.values())
    shown: dict[str, polls.Poll | None] = {}
    candidates: dict[str, list[str]] = {}
    if wanted or sections:
        pipe = store.redis.pipeline(transaction=False)
        for poll_id in wanted:
            polls.queue_poll(pipe, keys, poll_id)
        links.queue_candidates(pipe, keys, sections)
        replies = iter(pipe.execute())
        shown = {poll_id: polls.take_poll(replies, poll_id, now) for poll_id in wanted}
        candidates = links.take_candidates(replies, sections)
    filled = links.fill(store, boxes, candidates)

    out: dict[str, WidgetArticle | None] = dict.fromkeys(article_ids)
    for article_id, found in counts.items():
        out[article_id] = WidgetArticle(
            found, filled[article_id],
            [poll for poll_id in poll_ids[article_id] if (poll := shown[poll_id]) is not None],
        )
    return out
