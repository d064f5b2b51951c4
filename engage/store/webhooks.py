"""Webhooks: the registry admins edit, and the delivery state the worker keeps.

Registry: `P:webhooks` hash, webhook id -> JSON {id, url, events, secret, created_ms,
site}; `site` (absent or null: every site) limits it to one site's events.
The secret is kept (it signs deliveries) but never leaves the store through the API.

Delivery state, all in Redis so a worker can die at any moment:
- each event stream carries the consumer group GROUP; an entry stays pending in the
  group until every matching webhook has either received it or has a retry scheduled;
- `P:webhooks:retry` zset: one member per delivery waiting for a retry (the exact body,
  so a retry is byte-identical and carries the same idempotency id), scored by due time;
- `P:webhooks:dead` stream: deliveries given up after WEBHOOK_MAX_ATTEMPTS;
- `P:webhooks:status` hash: webhook id -> JSON of its last attempt, for the admins.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import redis

from engage.store import Store, events

GROUP = "engage-webhooks"
DEAD_MAXLEN = 10_000
# The event a test delivery carries: sent to the one webhook asked, whatever it takes.
TEST_EVENT = "webhook.test"

_STREAM_OWNER_RE = re.compile(r":(a|p):\{([^}]*)\}:events$")


# -- registry ---------------------------------------------------------------------------
def matches(patterns: list[str], event_type: str) -> bool:
    """`patterns` holds exact types, "<family>.*" or "*"."""
    family = event_type.split(".", 1)[0]
    return any(p == "*" or p == event_type or p == family + ".*" for p in patterns)


def public(record: dict[str, Any], last_attempt: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the API shows: everything but the secret, with its last delivery attempt."""
    return {
        "id": record["id"],
        "url": record["url"],
        "events": record["events"],
        "site": record.get("site"),
        "created_at": events.iso(int(record["created_ms"]) / 1000),
        "last_attempt": last_attempt,
    }


def listed(store: Store) -> list[dict[str, Any]]:
    """Every webhook as the API and the dashboard show it, oldest first."""
    attempts = last_attempts(store)
    return [public(r, attempts.get(r["id"])) for r in list_all(store)]


def exists(store: Store, webhook_id: str) -> bool:
    return bool(store.redis.hexists(store.keys.webhooks, webhook_id))


def create(store: Store, url: str, events: list[str], secret: str,
           site: str | None = None) -> dict[str, Any]:
    record = {
        "id": "wh_" + secrets.token_hex(8),
        "url": url,
        "events": list(dict.fromkeys(events)),
        "secret": secret,
        "created_ms": int(time.time() * 1000),
        "site": site,
    }
    store.redis.hset(store.keys.webhooks, record["id"], json.dumps(record))
    return record


def list_all(store: Store) -> list[dict[str, Any]]:
    """Every webhook, oldest first, secrets included (callers decide what to show)."""
    raw = store.redis.hgetall(store.keys.webhooks)
    records = [json.loads(value) for value in raw.values()]
    return sorted(records, key=lambda r: (int(r["created_ms"]), r["id"]))


def delete(store: Store, webhook_id: str) -> bool:
    pipe = store.redis.pipeline(transaction=False)
    pipe.hdel(store.keys.webhooks, webhook_id)
    pipe.hdel(store.keys.webhook_status, webhook_id)
    return bool(pipe.execute()[0])


def delivery(webhook_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """A delivery of `event` to a webhook, as the retry set keeps it: the body is
    serialised once, so every retry sends the same bytes."""
    return {"delivery": event["id"], "webhook": webhook_id, "attempts": 0,
            "body": json.dumps(event, separators=(",", ":"))}


def queue_test(store: Store, webhook_id: str) -> str:
    """A `webhook.test` delivery to this webhook, put in the retry set due now: the
    worker sends it as it sends any (signed, retried, dead-lettered), and its outcome
    shows as the webhook's last attempt. Returns the delivery id."""
    event = {"id": f"{webhook_id}:test_{secrets.token_hex(8)}", "type": TEST_EVENT,
             "occurred_at": events.iso(time.time()),
             "data": {"webhook": webhook_id}}
    schedule_retry(store, delivery(webhook_id, event), time.time())
    return str(event["id"])


# -- what admins see of the deliveries ------------------------------------------------------
def record_attempt(store: Store, delivery: dict[str, Any], outcome: str,
                   error: str | None) -> None:
    """Keep the webhook's last attempt (`delivered`, `failed`: retried later, `dead`)."""
    store.redis.hset(store.keys.webhook_status, delivery["webhook"], json.dumps({
        "at": events.iso(time.time()), "outcome": outcome,
        "error": error, "attempts": delivery["attempts"], "delivery": delivery["delivery"],
    }))


def last_attempts(store: Store) -> dict[str, dict[str, Any]]:
    """Webhook id -> its last attempt, for every webhook that had one."""
    raw = store.redis.hgetall(store.keys.webhook_status)
    return {webhook_id: json.loads(value) for webhook_id, value in raw.items()}


# -- reading the event streams ------------------------------------------------------------
Entry = tuple[str, str, dict[str, str]]  # stream key, entry id, fields


def owner_tag(stream_key: str) -> str:
    """"a:<article>" or "p:<poll>" for a stream key (part of the idempotency id)."""
    found = _STREAM_OWNER_RE.search(stream_key)
    return f"{found.group(1)}:{found.group(2)}" if found else stream_key


def ensure_groups(store: Store, stream_keys: list[str], start_ms: int) -> list[str]:
    """Create the group on each existing stream, starting just before `start_ms`;
    returns the streams that now carry it.

    Starting at the oldest webhook's creation (not at "$") means entries appended
    between a stream's creation and the worker noticing it are still delivered. A
    stream that does not exist (yet, or any more: a deleted poll's log expires) is
    left alone rather than recreated without a lifetime; it is tried again later.
    """
    start = f"{max(start_ms - 1, 0)}-0"
    pipe = store.redis.pipeline(transaction=False)
    for key in stream_keys:
        pipe.xgroup_create(key, GROUP, id=start, mkstream=False)
    ready: list[str] = []
    for key, reply in zip(stream_keys, pipe.execute(raise_on_error=False), strict=True):
        if not isinstance(reply, Exception) or "BUSYGROUP" in str(reply):
            ready.append(key)
        elif "requires the key to exist" not in str(reply):
            raise reply
    return ready


def _flatten(reply: Any) -> list[Entry]:
    out: list[Entry] = []
    for stream, entries in reply or []:
        for entry_id, fields in entries:
            if fields is not None:  # a pending entry trimmed away has no fields
                out.append((stream, entry_id, fields))
    return out


def read(store: Store, consumer: str, stream_keys: list[str], count: int,
         pending: bool = False) -> list[Entry]:
    """New entries (">"), or with `pending` this consumer's unacknowledged ones ("0").

    One XREADGROUP per stream, pipelined: a cluster refuses one over several slots, and
    one way serves both (redis-py sends one round trip per node)."""
    start = "0" if pending else ">"
    pipe = store.redis.pipeline(transaction=False)
    for key in stream_keys:
        pipe.xreadgroup(GROUP, consumer, {key: start}, count=count)
    return [entry for reply in pipe.execute() for entry in _flatten(reply)]


def claim_idle(store: Store, consumer: str, stream_keys: list[str], min_idle_ms: int,
               count: int) -> list[Entry]:
    """Take over entries another (dead) consumer read but never acknowledged."""
    pipe = store.redis.pipeline(transaction=False)
    for key in stream_keys:
        pipe.xautoclaim(key, GROUP, consumer, min_idle_ms, start_id="0-0", count=count)
    out: list[Entry] = []
    for key, reply in zip(stream_keys, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(reply, redis.ResponseError):
            continue  # no group yet on this stream: nothing to claim
        if isinstance(reply, Exception):
            raise reply
        out.extend((key, entry_id, fields) for entry_id, fields in reply[1] if fields)
    return out


def ack(store: Store, entries: list[Entry]) -> None:
    if not entries:
        return
    by_stream: dict[str, list[str]] = {}
    for stream, entry_id, _fields in entries:
        by_stream.setdefault(stream, []).append(entry_id)
    pipe = store.redis.pipeline(transaction=False)
    for stream, ids in by_stream.items():
        pipe.xack(stream, GROUP, *ids)
    pipe.execute()


# -- retries and dead letters -------------------------------------------------------------
def schedule_retry(store: Store, delivery: dict[str, Any], due: float,
                   replaces: str | None = None) -> None:
    """Put a delivery in the retry set, then drop the member it replaces.

    In that order a crash in between leaves two members for one delivery (a repeat
    with the same id later), never none; and no MULTI, which a cluster pipeline lacks.
    """
    key = store.keys.webhook_retry
    member = json.dumps(delivery, separators=(",", ":"), sort_keys=True)
    pipe = store.redis.pipeline(transaction=False)
    pipe.zadd(key, {member: due})
    if replaces is not None and replaces != member:
        pipe.zrem(key, replaces)
    pipe.execute()


def claim_due(store: Store, now: float, lease_until: float, limit: int) -> list[str]:
    """Due retries, leased to this caller until `lease_until`."""
    due: list[str] = store.run(
        "claim_webhook_retries", keys=[store.keys.webhook_retry], args=[now, lease_until, limit]
    )
    return due


def finish_retry(store: Store, member: str) -> None:
    store.redis.zrem(store.keys.webhook_retry, member)


def retry_count(store: Store) -> int:
    return int(store.redis.zcard(store.keys.webhook_retry))


def dead_letter(store: Store, delivery: dict[str, Any], error: str,
                member: str | None = None) -> None:
    """Record a delivery given up on; then drop its retry member (a crash between the
    two leaves a retry that dead-letters again: a duplicate, never a loss)."""
    store.redis.xadd(
        store.keys.webhook_dead,
        {
            "delivery": delivery["delivery"],
            "webhook": delivery["webhook"],
            "attempts": str(delivery["attempts"]),
            "error": error,
            "body": delivery["body"],
        },
        maxlen=DEAD_MAXLEN,
        approximate=True,
    )
    if member is not None:
        finish_retry(store, member)


def dead_letters(store: Store, count: int = 100) -> list[dict[str, Any]]:
    """The newest deliveries given up on, newest first, with when (from the entry id)."""
    return events.newest(store, store.keys.webhook_dead, count)


def retry_dead(store: Store, entry_id: str) -> bool:
    """Queue a dead letter again, due now, with its exact body and its attempts counted
    afresh, then drop it from the dead letters; False when it is gone."""
    found = store.redis.xrange(store.keys.webhook_dead, entry_id, entry_id)
    if not found:
        return False
    fields = found[0][1]
    schedule_retry(store, {"delivery": fields["delivery"], "webhook": fields["webhook"],
                           "attempts": 0, "body": fields["body"]}, time.time())
    store.redis.xdel(store.keys.webhook_dead, entry_id)
    return True
