"""Staff actions on reader data land in an audit log admins read (issue 26): every event
export (API and dashboard) and poll export, with who, how and the query."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from engage.store import audit
from tests.conftest import ARTICLE
from tests.desk import Desk
from tests.test_polls import create

LOG = "/api/v1/audit-log"


def token_id(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer eng_").partition(".")[0]


def test_exports_are_logged_with_who_how_and_what(
    client: FlaskClient, editor: dict[str, str], admin: dict[str, str], desk: Desk,
    admin_desk: Desk,
) -> None:
    assert client.put("/api/v1/articles/a-one", json=ARTICLE, headers=editor).status_code == 201
    poll = create(client, editor, article="a-one")
    assert client.get(LOG, headers=admin).json == {"entries": []}
    exported = client.get("/api/v1/events/export?format=ndjson&article=a-one", headers=editor)
    assert exported.status_code == 200
    exported.get_data()
    # A refused export (bad query) shows nothing and logs nothing.
    assert client.get("/api/v1/events/export?format=xml", headers=editor).status_code == 422
    assert client.get(f"/api/v1/polls/{poll['id']}/export.csv", headers=editor).status_code == 200
    assert desk.get("/dashboard/export?format=csv").status_code == 200
    assert desk.get(f"/dashboard/polls/{poll['id']}/export.csv").status_code == 200

    entries = client.get(LOG, headers=admin).json["entries"][1:]
    assert [(e["action"], e["via"]) for e in entries] == [
        ("events.export", "dashboard"), ("poll.export", "api"), ("events.export", "api")]
    newest = client.get(LOG, headers=admin).json["entries"][0]
    assert (newest["action"], newest["via"]) == ("poll.export", "dashboard")
    for entry in entries:
        assert (entry["staff"], entry["name"], entry["role"]) == (
            token_id(editor), "test editor", "editor")
        assert entry["at"].endswith("Z")
    assert json.loads(entries[2]["detail"]) == {"article": "a-one", "format": "ndjson",
                                                "type": []}
    assert json.loads(entries[1]["detail"]) == {"poll": poll["id"]}
    # Editors cannot read it; the admins' page lists the same.
    assert client.get(LOG, headers=editor).status_code == 403
    page = admin_desk.get("/dashboard/admin/audit")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert text.count("events.export") == 2 and "test editor" in text
    assert desk.get("/dashboard/admin/audit").status_code == 403


def test_the_log_is_bounded(store: Any) -> None:
    staff = {"id": "t1", "name": "n", "role": "editor"}
    written = audit.AUDIT_MAXLEN + 3
    for i in range(written):
        audit.record(store, staff, "events.export", "api", {"n": i})
    assert store.redis.xlen(store.keys.audit) == audit.AUDIT_MAXLEN
    newest = audit.entries(store, 1)[0]
    assert json.loads(newest["detail"]) == {"n": written - 1}
