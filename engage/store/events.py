"""The event log: one Redis stream per article and per poll, in that owner's slot.

Every accepted change is appended by the same Lua script that makes it, so the log
and the counts cannot disagree. Readers of the whole log (exports, webhooks) find
the streams through the article and poll indexes.
"""

from __future__ import annotations

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
        keys.poll_part(p, "events") for p in poll_ids
    ]


def decode(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """A stream entry as an event: its id, its time (from the id) and its fields."""
    millis = int(entry_id.split("-", 1)[0])
    return {"id": entry_id, "ts_ms": millis, **fields}
