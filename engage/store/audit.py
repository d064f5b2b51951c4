"""The audit log: staff actions on reader data (exports of events), for admins to read.

A capped stream (`keys.audit`): each entry says who (the staff record's id, name and
role), did what (`action`), through which door (`via`: api or dashboard) and with what
(`detail`, the export's query as JSON).
"""

from __future__ import annotations

import json
from typing import Any

from engage.store import Store, events

AUDIT_MAXLEN = 10_000


def record(store: Store, staff: dict[str, Any], action: str, via: str,
           detail: dict[str, Any]) -> None:
    store.redis.xadd(store.keys.audit, {
        "action": action, "via": via, "staff": str(staff.get("id", "")),
        "name": str(staff.get("name") or ""), "role": str(staff.get("role", "")),
        "detail": json.dumps(detail, sort_keys=True, default=str),
    }, maxlen=AUDIT_MAXLEN, approximate=False)


def entries(store: Store, count: int = 100) -> list[dict[str, Any]]:
    """The newest `count` entries, newest first."""
    return events.newest(store, store.keys.audit, count)
