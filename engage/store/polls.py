"""Reader polls: one question, 2-10 options, one (changeable) vote per reader.

Every write is one Lua script on the poll's hash-tagged keys (see `scripts.py`). Time is
passed in by the caller (`now`, default the store's clock) so `closes_at` is judged
inside the script at the exact millisecond, without a background job: a poll whose
`closes_at` has passed reports status "closed" and refuses votes, while its stored
status stays "open" until an editor changes it.

Results: `counts` are ticks per option, `voters` the number of distinct voters (a
multiple-choice voter ticks several options but counts once), and `percentages` are
each option's share of all ticks, rounded by largest remainder so they add up to
exactly 100 (all zero while nobody has voted).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engage.errors import IdTaken, InvalidOptions, UnknownArticle
from engage.store import Store, budgets, scripts
from engage.store.keys import Keys
from engage.store.scripts import Status

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(when: datetime) -> int:
    """Whole milliseconds since the epoch, in integer arithmetic (no float rounding)."""
    return (when - _EPOCH) // _MS


def _to_ms_precision(when: datetime) -> datetime:
    # closes_at is compared in whole milliseconds; keep the shown time equal to that.
    when = when.astimezone(UTC)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def option_ids(count: int) -> list[str]:
    """Short, stable option ids in display order: o1, o2, ..."""
    return [f"o{n}" for n in range(1, count + 1)]


def option_order(option_id: str) -> tuple[int, str]:
    """Sort key that keeps o2 before o10; unknown ids sort stably too."""
    return (len(option_id), option_id)


def new_id() -> str:
    return "p" + secrets.token_hex(6)


# -- results -------------------------------------------------------------------------


def is_closed(meta: dict[str, str], now: datetime) -> bool:
    if meta.get("status") != "open":
        return True
    closes_ms = meta.get("closes_ms")
    return bool(closes_ms) and epoch_ms(now) >= int(closes_ms or 0)


@dataclass(frozen=True)
class Poll:
    """A poll as stored, judged at a moment: its standing counts and, when a reader was
    named, that reader's vote. What a caller may see of it is the API's call."""

    id: str
    question: str
    options: list[dict[str, str]]  # {"id", "label"} in display order
    article: str | None
    multiple: bool
    max_choices: int
    closes_at: str | None
    visibility: str  # when readers see results: always, after_vote, after_close
    min_votes: int  # voters needed before readers see any result
    closed: bool  # by an editor, or by closes_at at the moment judged
    created_at: str | None
    updated_at: str | None
    counts: dict[str, int]  # option id -> ticks, every option present
    voters: int  # distinct voters (a multiple-choice voter ticks several options)
    mine: list[str] | None

    @property
    def status(self) -> str:
        return "closed" if self.closed else "open"


def _decode(
    poll_id: str,
    meta: dict[str, str],
    raw_counts: dict[str, str],
    mine_raw: str | None,
    now: datetime,
) -> Poll:
    options = json.loads(meta["options"])
    return Poll(
        id=poll_id,
        question=meta["question"],
        options=options,
        article=meta.get("article") or None,
        multiple=meta.get("multiple") == "1",
        max_choices=int(meta["max_choices"]),
        closes_at=meta.get("closes_at") or None,
        visibility=meta.get("results", "always"),
        min_votes=int(meta.get("min_votes") or 0),
        closed=is_closed(meta, now),
        created_at=meta.get("created_at"),
        updated_at=meta.get("updated_at"),
        counts={o["id"]: max(0, int(raw_counts.get(o["id"], 0))) for o in options},
        voters=max(0, int(raw_counts.get("_voters", 0))),
        mine=mine_raw.split(",") if mine_raw else None,
    )


def _own_keys(keys: Keys, poll_id: str) -> list[str]:
    """The keys a poll's life begins and ends with: its hash, counts, voters, events."""
    return [keys.poll(poll_id), keys.poll_counts(poll_id), keys.poll_voters(poll_id),
            keys.poll_events(poll_id)]


def _pairs(flat: list[Any]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


# -- reads ---------------------------------------------------------------------------
def queue_poll(pipe: Any, keys: Keys, poll_id: str, reader: str | None = None) -> None:
    """Queue on a pipeline what `take_poll` reads back: the poll's fields, its counts
    and the reader's vote."""
    pipe.hgetall(keys.poll(poll_id))
    pipe.hgetall(keys.poll_counts(poll_id))
    if reader:
        pipe.hget(keys.poll_voters(poll_id), reader)


def take_poll(replies: Iterator[Any], poll_id: str, now: datetime,
              reader: str | None = None) -> Poll | None:
    """The replies of one `queue_poll`; None for an unknown poll."""
    meta, counts = next(replies), next(replies)
    mine = next(replies) if reader else None
    return _decode(poll_id, meta, counts, mine, now) if meta else None


def queue_article_polls(pipe: Any, keys: Keys, article_id: str) -> None:
    """Queue the ids of the article's polls, oldest first (one reply, a list)."""
    pipe.zrange(keys.article_polls(article_id), 0, -1)


def get(
    store: Store,
    poll_id: str,
    reader: str | None = None,
    now: datetime | None = None,
) -> Poll | None:
    """The poll (with the reader's vote); None for an unknown poll."""
    return get_many(store, [poll_id], reader, now or store.now()).get(poll_id)


def get_many(
    store: Store, poll_ids: list[str], reader: str | None, now: datetime
) -> dict[str, Poll]:
    """The known ones of the polls (with the reader's votes), in one pipeline."""
    pipe = store.redis.pipeline(transaction=False)
    for poll_id in poll_ids:
        queue_poll(pipe, store.keys, poll_id, reader)
    replies = iter(pipe.execute())
    found = {poll_id: take_poll(replies, poll_id, now, reader) for poll_id in poll_ids}
    return {poll_id: poll for poll_id, poll in found.items() if poll is not None}


def for_articles(
    store: Store,
    article_ids: Iterable[str],
    reader: str | None = None,
    now: datetime | None = None,
) -> dict[str, list[Poll]]:
    """The polls attached to each article, oldest first (two round trips in all)."""
    now = now or store.now()
    article_ids = list(dict.fromkeys(article_ids))
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        queue_article_polls(pipe, store.keys, article_id)
    per_article = dict(zip(article_ids, pipe.execute(), strict=True))
    all_ids = list(dict.fromkeys(p for ids in per_article.values() for p in ids))
    found = get_many(store, all_ids, reader, now) if all_ids else {}
    return {
        article_id: [found[p] for p in ids if p in found]
        for article_id, ids in per_article.items()
    }


_PAGE_SCAN = 200


def list_page(
    store: Store, status: str | None = None, offset: int = 0, limit: int = 50,
    now: datetime | None = None,
) -> tuple[list[Poll], bool]:
    """A page of the polls, newest first; `status` filters by the effective state.

    Returns the page and whether more follow. Reads the index in chunks until the page
    is full, so the cost grows with offset + limit, not with every poll ever made.
    """
    now = now or store.now()
    matched: list[Poll] = []
    start = 0
    while len(matched) <= offset + limit:
        poll_ids = list(store.redis.zrevrange(store.keys.polls, start, start + _PAGE_SCAN - 1))
        if not poll_ids:
            break
        found = get_many(store, poll_ids, None, now)
        matched += [
            poll for poll_id in poll_ids
            if (poll := found.get(poll_id)) is not None
            and (status is None or poll.status == status)
        ]
        start += _PAGE_SCAN
    return matched[offset:offset + limit], len(matched) > offset + limit


def ids(store: Store) -> list[str]:
    """Every poll ever made, oldest first (deleted ones too: `get_many` leaves them out)."""
    return list(store.redis.zrange(store.keys.polls, 0, -1))


def close_due(store: Store, now: datetime | None = None) -> int:
    """Record `poll.closed` for every open poll whose closes_at has passed (once per
    deadline, however often this runs); returns how many it recorded."""
    now = now or store.now()
    keys = store.keys
    poll_ids = ids(store)
    pipe = store.redis.pipeline(transaction=False)
    for poll_id in poll_ids:
        pipe.hmget(keys.poll(poll_id), "status", "closes_ms", "closed_logged")
    now_ms = epoch_ms(now)
    recorded = 0
    for poll_id, (status, closes_ms, logged) in zip(poll_ids, pipe.execute(), strict=True):
        if status != "open" or not closes_ms or int(closes_ms) > now_ms or logged == closes_ms:
            continue
        raw = store.run("close_at_deadline",
                        keys=[keys.poll(poll_id), keys.poll_events(poll_id)],
                        args=[now_ms, store.min_event_id(now), poll_id])
        recorded += int(raw[0]) == Status.CHANGED
    return recorded


# -- writes --------------------------------------------------------------------------
def create(
    store: Store,
    data: dict[str, Any],
    poll_id: str | None = None,
    now: datetime | None = None,
) -> Poll:
    """Create a poll from validated input (schemas.PollInSchema).

    Raises UnknownArticle or IdTaken (a chosen id already in use; seeds choose theirs).
    """
    now = now or store.now()
    keys = store.keys
    article = data.get("article")
    if article and not store.redis.exists(keys.article(article)):
        raise UnknownArticle()
    closes_at: datetime | None = data.get("closes_at")
    if closes_at is not None:
        closes_at = _to_ms_precision(closes_at)
    labels: list[str] = list(data["options"])
    ids = option_ids(len(labels))
    multiple = bool(data.get("multiple"))
    max_choices = int(data.get("max_choices") or len(labels)) if multiple else 1
    fields = {
        "question": data["question"],
        "options": json.dumps(
            [{"id": i, "label": label} for i, label in zip(ids, labels, strict=True)]
        ),
        "option_ids": ",".join(ids),
        "article": article or "",
        "multiple": "1" if multiple else "0",
        "max_choices": str(max_choices),
        "closes_at": closes_at.isoformat() if closes_at else "",
        "closes_ms": str(epoch_ms(closes_at)) if closes_at else "",
        "results": data.get("results") or "always",
        "min_votes": str(int(data.get("min_votes") or 0)),
        "status": "open",
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }
    chosen = poll_id is not None
    for _ in range(1 if chosen else 5):
        poll_id = poll_id if chosen else new_id()
        assert poll_id is not None
        raw = store.run(
            "create_poll",
            keys=_own_keys(keys, poll_id),
            args=[json.dumps(fields), store.min_event_id(now), poll_id, article or ""],
        )
        if int(raw[0]) == Status.CHANGED:
            break
    else:
        raise IdTaken()
    # Indexes live in other slots; written after the poll exists, idempotent.
    pipe = store.redis.pipeline(transaction=False)
    pipe.zadd(keys.polls, {poll_id: now.timestamp()})
    if article:
        pipe.zadd(keys.article_polls(article), {poll_id: now.timestamp()})
    pipe.execute()
    if article:
        store.forget(article)
    return _decode(poll_id, fields, {}, None, now)


def vote(
    store: Store,
    poll_id: str,
    reader: str,
    address: str,
    options: Iterable[str] | None,
    now: datetime | None = None,
    networks: budgets.Networks = budgets.NO_NETWORKS,
    erasing: bool = False,
) -> tuple[Poll, bool]:
    """Cast, change or withdraw (options None or empty) a reader's vote, spending from
    the budgets of the address group `address` and its wider `networks` (store/budgets.py).

    Returns the poll with this reader's vote and whether anything changed. Raises
    UnknownPoll, PollClosed, InvalidOptions (unknown option, several on a single-choice
    poll, more than max_choices) or Throttled. Repeating a vote is a no-op.
    `erasing` withdraws for an erasure (store/readers.py): no budget, no reader logged.
    """
    now = now or store.now()
    keys = store.keys
    owner = keys.poll(poll_id)
    chosen = sorted(set(options or ()), key=option_order)
    if any(not option or "," in option for option in chosen):
        # The script receives the ids comma-joined; "o1,o2" must not pass as two.
        raise InvalidOptions("unknown")
    hour_ttl, day_ttl = store.bucket_ttls()
    raw = store.run(
        "vote_poll",
        keys=[
            owner,
            keys.poll_counts(poll_id),
            keys.poll_voters(poll_id),
            keys.poll_throttle(poll_id, address),
            keys.poll_events(poll_id),
            keys.hour_bucket(owner, now),
            keys.day_bucket(owner, now),
            *(keys.poll_throttle(poll_id, network) for network in networks.values()),
        ],
        args=[
            reader,
            ",".join(chosen),
            epoch_ms(now),
            "" if erasing else budgets.vote_limits(store.config, networks),
            store.config["THROTTLE_WINDOW"],
            hour_ttl,
            day_ttl,
            store.min_event_id(now),
            poll_id,
            "1" if erasing else "",
        ],
    )
    result = scripts.result(raw)
    mine = result.values[0] or None
    n_counts = int(result.values[1])
    counts = _pairs(result.values[2:2 + n_counts])
    meta = _pairs(result.values[2 + n_counts:])
    poll = _decode(poll_id, meta, counts, mine, now)
    if poll.article:
        store.forget(poll.article)
    return poll, result.status == Status.CHANGED


def patch(
    store: Store, poll_id: str, data: dict[str, Any], now: datetime | None = None
) -> tuple[Poll, bool]:
    """Close, reopen, reschedule or edit a poll; returns it and whether it changed.

    `data` (schemas.PollPatchSchema) may hold status, closes_at (None clears it),
    question, results, min_votes. Raises UnknownPoll, PollFinal (editing a closed poll
    without reopening it) or ClosesAtPassed (reopening while closes_at is past).
    """
    now = now or store.now()
    keys = store.keys
    closes_flag, closes_ms = "", ""
    if "closes_at" in data:
        closes_at: datetime | None = data["closes_at"]
        if closes_at is None:
            closes_flag = "-"
        else:
            closes_at = _to_ms_precision(closes_at)
            closes_flag, closes_ms = closes_at.isoformat(), str(epoch_ms(closes_at))
    edits: dict[str, str] = {k: data[k] for k in ("question", "results") if k in data}
    if "min_votes" in data:
        edits["min_votes"] = str(int(data["min_votes"] or 0))
    raw = store.run(
        "patch_poll",
        keys=[keys.poll(poll_id), keys.poll_events(poll_id)],
        args=[
            epoch_ms(now),
            data.get("status") or "",
            closes_flag,
            closes_ms,
            json.dumps(edits),
            now.isoformat(),
            store.min_event_id(now),
            poll_id,
        ],
    )
    result = scripts.result(raw)
    meta = _pairs(result.values)
    counts = store.redis.hgetall(keys.poll_counts(poll_id))
    poll = _decode(poll_id, meta, counts, None, now)
    if poll.article:
        store.forget(poll.article)
    return poll, result.status == Status.CHANGED


def delete(store: Store, poll_id: str, now: datetime | None = None) -> None:
    """Delete a poll and its votes (admin). Raises UnknownPoll."""
    now = now or store.now()
    keys = store.keys
    retention = int(store.config["EVENT_RETENTION_DAYS"]) * 86400
    raw = store.run(
        "delete_poll",
        keys=_own_keys(keys, poll_id),
        args=[store.min_event_id(now), poll_id, retention],
    )
    result = scripts.result(raw)
    article = result.values[0]
    if article:
        store.redis.zrem(keys.article_polls(article), poll_id)
        store.forget(article)


def events(store: Store, poll_id: str, batch: int = 500) -> Iterable[tuple[str, dict[str, str]]]:
    """The poll's event stream, oldest first, read in batches (for exports)."""
    key = store.keys.poll_events(poll_id)
    start = "-"
    while True:
        entries = store.redis.xrange(key, min=start, max="+", count=batch)
        yield from entries
        if len(entries) < batch:
            return
        start = "(" + entries[-1][0]

