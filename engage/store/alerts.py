"""Alert rules, what each one is firing for, and the notes waiting for delivery.

All under `P:x:{alerts}` (one hash tag, so one cluster slot; keys.py maps them):
- `rules` hash: rule id -> JSON rule, as editors saved it;
- `state` hash: "<rule id>|<subject>" -> JSON {at, figures} while the rule fires for
  that article or poll (a poll milestone, and "digest|<day>", stay: they happen once);
- `pending` hash + `due` zset: notes (fired, resolved, digest) not yet delivered, with
  the channels still to do, and when to try each next.

A note is queued by the same script call that changes the state (`transition`), so a
worker that dies after it still has the note to deliver, and a second worker seeing
the same condition queues nothing. Delivery claims a due note by moving it to a lease
end first (the webhook retries' claim), so a dead worker's note comes back when the
lease ends; a channel done is written back at once, so it is not sent again.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from engage.store import Store


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# -- rules --------------------------------------------------------------------------------
def list_rules(store: Store) -> list[dict[str, Any]]:
    raw = store.redis.hgetall(store.keys.alerts("rules"))
    return sorted((json.loads(v) for v in raw.values()), key=lambda r: (r["created_at"], r["id"]))


def get_rule(store: Store, rule_id: str) -> dict[str, Any] | None:
    raw = store.redis.hget(store.keys.alerts("rules"), rule_id)
    return json.loads(raw) if raw else None


def save_rule(store: Store, data: dict[str, Any],
              rule_id: str | None = None) -> dict[str, Any] | None:
    """Create a rule (no id) or replace one; None when the one named does not exist."""
    now = store.now().isoformat(timespec="seconds").replace("+00:00", "Z")
    if rule_id is None:
        record = {**data, "id": "ar_" + secrets.token_hex(8), "created_at": now}
    else:
        old = get_rule(store, rule_id)
        if old is None:
            return None
        record = {**data, "id": rule_id, "created_at": old["created_at"]}
    record["updated_at"] = now
    store.redis.hset(store.keys.alerts("rules"), record["id"], _dump(record))
    return record


def delete_rule(store: Store, rule_id: str) -> bool:
    """Delete a rule and what it is firing for (no resolved note follows)."""
    if not store.redis.hdel(store.keys.alerts("rules"), rule_id):
        return False
    fields = list(firing(store, rule_id))
    if fields:
        store.redis.hdel(store.keys.alerts("state"), *(f"{rule_id}|{s}" for s in fields))
    return True


# -- state and notes ----------------------------------------------------------------------
def firing(store: Store, rule_id: str) -> dict[str, dict[str, Any]]:
    """subject -> state of everything the rule fires for now."""
    prefix = f"{rule_id}|"
    found = store.redis.hscan_iter(store.keys.alerts("state"), match=prefix + "*", count=500)
    return {field[len(prefix):]: json.loads(value) for field, value in found}


def has_state(store: Store, field: str) -> bool:
    return bool(store.redis.hexists(store.keys.alerts("state"), field))


def transition(store: Store, field: str, fire: bool, state: dict[str, Any],
               note: dict[str, Any], due: float) -> bool:
    """Fire (or resolve) `field` and queue `note`, unless it already is in that state."""
    keys = store.keys
    done = store.run("alert_transition",
                     keys=[keys.alerts("state"), keys.alerts("pending"), keys.alerts("due")],
                     args=[field, "fire" if fire else "resolve", _dump(state), note["id"],
                           _dump(note), due])
    return bool(done)


def claim_due(store: Store, now: float, lease_until: float, limit: int) -> list[dict[str, Any]]:
    """Due notes, leased to this caller until `lease_until`."""
    keys = store.keys
    ids: list[str] = store.run("claim_webhook_retries", keys=[keys.alerts("due")],
                               args=[now, lease_until, limit])
    if not ids:
        return []
    notes = store.redis.hmget(keys.alerts("pending"), ids)
    gone = [note_id for note_id, raw in zip(ids, notes, strict=True) if raw is None]
    if gone:  # finished by another worker between the two calls
        store.redis.zrem(keys.alerts("due"), *gone)
    return [json.loads(raw) for raw in notes if raw is not None]


def save_note(store: Store, note: dict[str, Any], due: float | None = None) -> None:
    """Write back a note's progress (channels done, attempts), and its next try."""
    pipe = store.redis.pipeline(transaction=False)
    pipe.hset(store.keys.alerts("pending"), note["id"], _dump(note))
    if due is not None:
        pipe.zadd(store.keys.alerts("due"), {note["id"]: due})
    pipe.execute()


def finish(store: Store, note_id: str) -> None:
    pipe = store.redis.pipeline(transaction=False)
    pipe.hdel(store.keys.alerts("pending"), note_id)
    pipe.zrem(store.keys.alerts("due"), note_id)
    pipe.execute()
