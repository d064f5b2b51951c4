"""What engage holds about one reader: find it, hand it over, erase it, age it out.

A reader's votes live in each article's and poll's own slot (`voters` hashes, event
streams), so no script can also write a per-reader key on a Redis Cluster. The
per-reader index (`keys.reader_index`, in the reader's own slot) is therefore written
*before* the vote's script, by every vote path (`noting`): it may name an article the reader never
voted on (the script refused), never miss one they did. Export and erasure read the
truth from the article's or poll's own keys for each item the index names, so both are
exact; `P:readers` lists readers by last action for the retention job.

Erasure withdraws each vote through the vote scripts themselves (counts, reasons, poll
tallies and stats buckets move as for any withdrawal), logged without the reader. Once
the aggregator has applied a stream up to then, the reader's entries and those
anonymous withdrawals are removed from it: the live aggregates already hold the vote and
its withdrawal, and a rebuild from the streams sees neither, so both agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from engage.errors import REFUSALS, PollClosed, ReaderRevoked, UnknownArticle, UnknownPoll
from engage.store import Store, aggregates, events, polls, reactions

SCAN = 1000  # stream entries per XRANGE
FORGET_BATCH = 500  # readers unlinked per call of forget_inactive
_TAKEN_BACK: tuple[type[Exception], ...] = (*REFUSALS, ReaderRevoked)


def _revoked_key(store: Store, reader: str) -> str:
    # A digest, not the reader hash: an erased reader leaves no hash of theirs behind.
    return store.keys.reader_revoked(hashlib.sha256(b"revoked:" + reader.encode()).hexdigest())


def _retention(store: Store) -> int:
    return int(store.config["READER_RETENTION_DAYS"]) * 86400


@contextmanager
def noting(store: Store, reader: str, kind: str, owner_id: str, now: datetime,
           token: str | None) -> Iterator[None]:
    """Index the article ("a") or poll ("p") before the reader's vote there is cast (the
    body), in one round trip with the check that `token` (None: the erasure's own) is
    not revoked (ReaderRevoked); a refused vote puts the index back as it was, so a
    refusal changes nothing."""
    index, item = store.keys.reader_index(reader), f"{kind}:{owner_id}"
    pipe = store.redis.pipeline(transaction=False)
    pipe.get(_revoked_key(store, reader))
    pipe.hget(index, item)
    pipe.zscore(store.keys.readers, reader)
    pipe.pttl(index)
    _queue_note(pipe, store, reader, item, now)
    current, old_item, old_score, old_ttl = pipe.execute()[:4]
    try:
        if token is not None and _refused(current, token):
            raise ReaderRevoked()
        yield
    except _TAKEN_BACK:
        pipe = store.redis.pipeline(transaction=False)
        if old_item is None:
            pipe.hdel(index, item)
        else:
            pipe.hset(index, item, old_item)
        if old_score is None:
            pipe.zrem(store.keys.readers, reader)
        else:
            pipe.zadd(store.keys.readers, {reader: old_score})
        if old_ttl > 0:
            pipe.pexpire(index, old_ttl)
        pipe.execute()
        raise


def _queue_note(pipe: Any, store: Store, reader: str, item: str, now: datetime) -> None:
    """Queue the index's entry for `item` and the reader's last action, at `now`."""
    ms = int(now.timestamp() * 1000)
    index = store.keys.reader_index(reader)
    pipe.hset(index, item, ms)
    pipe.expire(index, _retention(store))
    pipe.zadd(store.keys.readers, {reader: ms})


def note_click(store: Store, reader: str, link_id: str, now: datetime) -> None:
    """Credit a counted click on a link to the reader. The index entry is the click's
    only link to the reader (its event names no one), written once the click counted."""
    pipe = store.redis.pipeline(transaction=False)
    _queue_note(pipe, store, reader, f"c:{link_id}", now)
    pipe.execute()


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _refused(current: str | None, token: str) -> bool:
    return current is not None and current != _token_digest(token)


def is_revoked(store: Store, reader: str, token: str) -> bool:
    """Whether the reader's tokens were erased, or renewed to another than `token`."""
    return _refused(store.redis.get(_revoked_key(store, reader)), token)


def revoke(store: Store, reader: str, keep: str = "") -> None:
    """Refuse every token of the reader's but `keep` (a renewal's new one; none for an
    erasure). Kept as long as a token can be renewed; an older one is refused for its
    age anyway."""
    value = _token_digest(keep) if keep else "erased"
    store.redis.set(_revoked_key(store, reader), value, ex=_retention(store))


def _items(store: Store, reader: str) -> dict[tuple[str, str], int]:
    raw = store.redis.hgetall(store.keys.reader_index(reader))
    out = {}
    for item, ms in raw.items():
        kind, _, owner_id = item.partition(":")
        out[(kind, owner_id)] = int(ms)
    return out


def _owner_keys(store: Store, kind: str, owner_id: str) -> tuple[str, str]:
    """(voters hash, events stream) of an article ("a") or poll ("p")."""
    if kind == "a":
        return store.keys.article_voters(owner_id), store.keys.article_events(owner_id)
    return store.keys.poll_voters(owner_id), store.keys.poll_events(owner_id)


def _history(store: Store, stream: str, reader: str, until: str = "+"
             ) -> list[tuple[str, dict[str, str]]]:
    """The reader's entries in one stream (up to `until`), oldest first."""
    found, start = [], "-"
    while True:
        page = store.redis.xrange(stream, start, until, count=SCAN)
        found += [(i, f) for i, f in page if f.get("reader") == reader]
        if len(page) < SCAN:
            return found
        start = "(" + page[-1][0]


def export(store: Store, reader: str) -> dict[str, Any]:
    """Every reaction, reason, poll answer and link click of the reader, and each change
    they made still in the event streams (EVENT_RETENTION_DAYS), with times."""
    out: dict[str, list[dict[str, Any]]] = {"reactions": [], "poll_answers": [], "clicks": []}
    for (kind, owner_id), ms in sorted(_items(store, reader).items()):
        at = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
        if kind == "c":
            out["clicks"].append({"link": owner_id, "at": at, "article": store.redis.hget(
                store.keys.linkindex, owner_id)})
            continue
        voters, stream = _owner_keys(store, kind, owner_id)
        held = store.redis.hget(voters, reader)
        history = [{k: v for k, v in events.decode(i, f).items()
                    if k not in {"reader", "hour", "id", "article" if kind == "a" else "poll"}}
                   for i, f in _history(store, stream, reader)]
        if held is None and not history:
            continue  # indexed before a vote the script refused
        if kind == "a":
            choice, _, reason = (held or "").partition("|")
            out["reactions"].append({"article": owner_id, "choice": choice or None,
                                     "reason": reason or None, "at": at, "history": history})
        else:
            out["poll_answers"].append({"poll": owner_id, "options": held.split(",") if held
                                        else None, "at": at, "history": history})
    return out


def _unlink(store: Store, reader: str, items: list[tuple[str, str]], withdraw: bool) -> None:
    """Withdraw (erasure) or keep (retention) the reader's votes, then remove every entry
    naming the reader: voters' fields, stream entries, the index (a click's only one)."""
    now = store.now()
    items = [(kind, owner_id) for kind, owner_id in items if kind != "c"]
    for kind, owner_id in items if withdraw else []:
        try:
            if kind == "a":
                reactions.vote(store, owner_id, reader, "", None, erasing=True)
            else:
                polls.vote(store, owner_id, reader, "", None, now, erasing=True)
        except PollClosed:
            pass  # a closed poll's results are final: its ballot is only unlinked below
        except (UnknownArticle, UnknownPoll):
            pass  # deleted since: nothing left to withdraw
    streams = [_owner_keys(store, kind, owner_id)[1] for kind, owner_id in items]
    if streams:
        aggregates.Aggregator(store, feed=False).catch_up(streams)
        applied = store.redis.hmget(store.keys.agg("seen"), streams)
        for (kind, owner_id), stream, until in zip(items, streams, applied, strict=True):
            gone = [i for i, _ in _history(store, stream, reader, until or "0-0")]
            gone += [i for i, f in _history(store, stream, "", until or "0-0")
                     if f.get("type", "").endswith(".withdraw")]
            pipe = store.redis.pipeline(transaction=False)
            pipe.hdel(_owner_keys(store, kind, owner_id)[0], reader)
            if gone:
                pipe.xdel(stream, *gone)
            pipe.execute()
    store.redis.delete(store.keys.reader_index(reader))
    store.redis.zrem(store.keys.readers, reader)


def erase(store: Store, reader: str) -> int:
    """Withdraw and remove everything of the reader's, and refuse their tokens from now
    on; returns how many articles, polls and links held something of theirs."""
    revoke(store, reader)
    items = sorted(_items(store, reader))
    _unlink(store, reader, items, withdraw=True)
    return len(items)


def forget_inactive(store: Store, now: datetime | None = None) -> int:
    """Unlink readers whose last action is older than READER_RETENTION_DAYS: counts,
    rankings and series stay as they are, the link to the reader goes, and their token
    is refused (the widget mints a new one). Returns how many readers were unlinked."""
    cutoff = (now or store.now()) - timedelta(seconds=_retention(store))
    stale = store.redis.zrangebyscore(store.keys.readers, "-inf",
                                      int(cutoff.timestamp() * 1000), start=0,
                                      num=FORGET_BATCH)
    for reader in stale:
        revoke(store, reader)
        _unlink(store, reader, sorted(_items(store, reader)), withdraw=False)
    return len(stale)
