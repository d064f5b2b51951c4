"""What engage holds about one reader: find it, hand it over, erase it, age it out.

A reader's votes live in each article's and poll's own slot (`voters` hashes, event
streams), so no script can also write a per-reader key on a Redis Cluster, and a vote is
the one script, one round trip. The per-reader index (`keys.reader_index`, in the
reader's own slot) is kept by the aggregator instead (`index_events`): each vote and
answer event names its reader, and every pass files the ones it read under them, off the
request path (a counted click's event names no one: its reader waits for the pass in
the article's `credits` hash, under the event's id). Export, erasure and retention first
bring the aggregator up to date (`_sync`), so the index then names every item of the
reader's, and read the truth from the article's or poll's own keys for each, so all
three are exact; `P:readers` lists readers by last action for the retention job.

A vote checks its token against this process's copy of `keys.revocations` (renewals and
erasures), read again at most once a second, not against Redis. A vote with an erased
token cast within that second counts until the aggregator reads it: it then withdraws
it as erasure does (`index_events`). A renewed token's vote within it is its own
reader's (the same one-vote field), so it is never counted twice.

Erasure withdraws each vote through the vote scripts themselves (counts, reasons, poll
tallies and stats buckets move as for any withdrawal), logged without the reader. Once
the aggregator has applied a stream up to then, the reader's entries and those
anonymous withdrawals are removed from it: the live aggregates already hold the vote and
its withdrawal, and a rebuild from the streams sees neither, so both agree.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from engage.errors import PollClosed, UnknownArticle, UnknownPoll
from engage.store import Store, aggregates, events, polls, reactions

SCAN = 1000  # stream entries per XRANGE
FORGET_BATCH = 500  # readers unlinked per call of forget_inactive
REVOCATIONS_READ = 1.0  # seconds a process votes on the revocations it last read
REVOCATIONS_PAGE = 10_000  # revocation entries per XRANGE
PRUNE_EVERY = 3600.0  # seconds between drops of revocations older than a token
ERASED = "erased"


def _digest(reader: str) -> str:
    # A digest, not the reader hash: an erased reader leaves no hash of theirs behind.
    return hashlib.sha256(b"revoked:" + reader.encode()).hexdigest()


def _revoked_key(store: Store, reader: str) -> str:
    return store.keys.reader_revoked(_digest(reader))


def _retention(store: Store) -> int:
    return int(store.config["READER_RETENTION_DAYS"]) * 86400


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _refused(current: str | None, token: str) -> bool:
    return current is not None and current != _token_digest(token)


def is_revoked(store: Store, reader: str, token: str) -> bool:
    """Whether the reader's tokens were erased, or renewed to another than `token`
    (asked of Redis: for renewals, exports and erasures)."""
    return _refused(store.redis.get(_revoked_key(store, reader)), token)


def _token_seconds(store: Store) -> int:
    return int(store.config["READER_TOKEN_DAYS"]) * 86400


def _read_revocations(store: Store, force: bool = False) -> None:
    """Bring this process's copy of the revocations up to date when it is a second old
    (`force`: now), from the entry it read last; every PRUNE_EVERY drop those older
    than a token can be, which are refused for their age anyway."""
    state = store.revocations
    if not force and store.timer() - state.read_at < REVOCATIONS_READ:
        return
    with state.lock:
        if not force and store.timer() - state.read_at < REVOCATIONS_READ:
            return  # another thread read them meanwhile
        while True:
            page = store.redis.xrange(store.keys.revocations, "(" + state.last_id, "+",
                                      count=REVOCATIONS_PAGE)
            for entry_id, fields in page:
                state.values[fields["d"]] = (fields["v"], int(entry_id.split("-", 1)[0]))
            if page:
                state.last_id = page[-1][0]
            if len(page) < REVOCATIONS_PAGE:
                break
        if store.timer() - state.pruned_at >= PRUNE_EVERY:
            state.pruned_at = store.timer()
            oldest = int(store.now().timestamp() * 1000) - _token_seconds(store) * 1000
            state.values = {d: v for d, v in state.values.items() if v[1] >= oldest}
        state.read_at = store.timer()


def _recent(store: Store, reader: str) -> str | None:
    entry = store.revocations.values.get(_digest(reader)[:32])
    return entry[0] if entry else None


def refused_to_vote(store: Store, reader: str, token: str) -> bool:
    """`is_revoked` as this process last read it (at most a second ago): a vote's check,
    which costs no round trip but the one read a second."""
    _read_revocations(store)
    return _refused(_recent(store, reader), token)


def revoke(store: Store, reader: str, keep: str = "") -> None:
    """Refuse every token of the reader's but `keep` (a renewal's new one; none for an
    erasure): at once in this process, within REVOCATIONS_READ in the others. The
    record is kept as long as a token can be renewed; an older one is refused for its
    age anyway."""
    value = _token_digest(keep) if keep else ERASED
    digest = _digest(reader)
    pipe = store.redis.pipeline(transaction=False)
    pipe.set(store.keys.reader_revoked(digest), value, ex=_retention(store))
    pipe.xadd(store.keys.revocations, {"d": digest[:32], "v": value})
    ms = int(pipe.execute()[1].split("-", 1)[0])
    with store.revocations.lock:
        held = store.revocations.values.get(digest[:32])
        if held is None or held[1] <= ms:  # a later one read meanwhile stands
            store.revocations.values[digest[:32]] = (value, ms)


def _sync(store: Store) -> None:
    """Apply every stream entry there is now, so the index names every vote and answer
    cast so far: one aggregator pass over every stream (no per-reader key can say which
    streams hold the reader's newest votes: see docs/privacy.md)."""
    streams = events.stream_keys(store)
    aggregator = aggregates.Aggregator(store)
    for i in range(0, len(streams), aggregates.READ_BATCH):
        aggregator.catch_up(streams[i:i + aggregates.READ_BATCH])


def index_events(store: Store, found: list[tuple[str, list[tuple[str, dict[str, str]]]]]
                 ) -> dict[str, set[tuple[str, str]]]:
    """File each vote, answer and credited click of `found` (stream entries the
    aggregator read, before it applies them: an entry applied is always filed) under its
    reader: the index's entry for the article, poll or link, and the reader's last
    action. A click's reader waits in its article's `credits` hash, taken from there.

    An erased reader is not filed. Returns the readers found erased, with their items
    in `found`, for `withdraw_erased` once the entries are applied. Looked at again after
    the writes, so an erasure that ran meanwhile (and removed an index these writes put
    back) is returned too."""
    noted: dict[str, dict[str, int]] = {}
    clicks: dict[str, list[tuple[str, str]]] = {}  # article -> [(entry id, link)]

    def note(reader: str, item: str, entry_id: str) -> None:
        items = noted.setdefault(reader, {})
        items[item] = max(items.get(item, 0), int(entry_id.split("-", 1)[0]))

    for _stream, entries in found:
        for entry_id, fields in entries:
            kind = fields.get("type", "")
            if kind == "link.click":
                clicks.setdefault(fields["article"], []).append((entry_id, fields["link"]))
            elif fields.get("reader"):
                item = f"p:{fields['poll']}" if kind.startswith("poll.") else \
                    f"a:{fields['article']}"
                note(fields["reader"], item, entry_id)
    pipe = store.redis.pipeline(transaction=False)
    for article_id, ids in clicks.items():
        pipe.hmget(store.keys.article_credits(article_id), [i for i, _ in ids])
    for ids, credited in zip(clicks.values(), pipe.execute() if clicks else (), strict=True):
        for (entry_id, link), reader in zip(ids, credited, strict=True):
            if reader:
                note(reader, f"c:{link}", entry_id)
    if not noted:
        return {}
    _read_revocations(store, force=True)
    pipe = store.redis.pipeline(transaction=False)
    last_seen: dict[str, int] = {}
    for reader, items in noted.items():
        if _recent(store, reader) != ERASED:
            index = store.keys.reader_index(reader)
            pipe.hset(index, mapping=items)
            pipe.expire(index, _retention(store))
            last_seen[reader] = max(items.values())
    if last_seen:  # one ZADD for the pass's readers, not one each
        pipe.zadd(store.keys.readers, last_seen, gt=True)
    for article_id, ids in clicks.items():  # filed (or an erased reader's): let go
        pipe.hdel(store.keys.article_credits(article_id), *(i for i, _ in ids))
    pipe.execute()
    _read_revocations(store, force=True)
    return {reader: {(item[0], item[2:]) for item in items}
            for reader, items in noted.items() if _recent(store, reader) == ERASED}


def withdraw_erased(store: Store, erased: dict[str, set[tuple[str, str]]]) -> None:
    """Withdraw, as erasure does, the votes of readers `index_events` found erased (cast
    by a token within a second of its erasure, on a process that had not read it yet),
    and whatever an index put back holds; withdrawing twice finds nothing the second
    time."""
    for reader, items in erased.items():
        _unlink(store, reader, sorted(items | set(_items(store, reader))), withdraw=True)


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
    _sync(store)
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
            continue  # withdrawn, and its history past EVENT_RETENTION_DAYS
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
    on; returns how many articles, polls and links held something of theirs.

    A vote cast after the pass that brings the index up to date is withdrawn by the
    aggregator, which then finds the reader erased (`index_events`)."""
    _sync(store)
    revoke(store, reader)
    items = sorted(_items(store, reader))
    _unlink(store, reader, items, withdraw=True)
    return len(items)


def forget_inactive(store: Store, now: datetime | None = None) -> int:
    """Unlink readers whose last action is older than READER_RETENTION_DAYS: counts,
    rankings and series stay as they are, the link to the reader goes, and their token
    is refused (the widget mints a new one). Returns how many readers were unlinked.
    Also trims the revocations no token can be young enough to need."""
    now = now or store.now()
    oldest = int((now - timedelta(seconds=_token_seconds(store))).timestamp() * 1000)
    store.redis.xtrim(store.keys.revocations, minid=oldest)

    _sync(store)  # a reader's last action may be in a vote not yet indexed
    cutoff = now - timedelta(seconds=_retention(store))
    stale_readers = store.redis.zrangebyscore(
        store.keys.readers, "-inf", int(cutoff.timestamp() * 1000), start=0,
        num=FORGET_BATCH)
    for reader in stale_readers:
        revoke(store, reader)
        _unlink(store, reader, sorted(_items(store, reader)), withdraw=False)
    return len(stale_readers)
