"""A data directory written by an earlier engage answers every question as it did then.

tests/data/datadir-2026-12-05 was written by tests/data/write_datadir.py at the commit
that closed issues 31 and 23 (the demo seed plus live votes, moved and withdrawn votes,
poll votes, link clicks and impressions, aggregates caught up, an AOF rewrite and a
tail). Its expected.json is every answer engage gave then: articles, reactions, links,
polls, poll exports, per-day stats, the all-time rankings and section figures, and the
whole event export. Refactors of the store and the upgrades that change key layouts must
keep these answers. (Day buckets live DAY_BUCKET_DAYS, 400 days: write a new set with
the script before November 2027.)
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from flask import Flask

from engage.store import get_store, tokens
from engage.store.embedded import AOF_DIR, EmbeddedRedis
from tests.conftest import make_app, new_reader

DATA = Path(__file__).parent / "data" / "datadir-2026-12-05"


def staff_token(app: Flask) -> dict[str, str]:
    with app.app_context():
        token = tokens.create(get_store(), "admin", "data set")[0]
    return {"Authorization": f"Bearer {token}"}


def stable(path: str, body: Any) -> Any:
    """The answer without the figures that move with the clock: trending and the last
    hour are about the hours before now, and a poll export's result rows carry the
    moment of the export."""
    if isinstance(body, list):
        return [re.sub(r"^result,[^,]*,", "result,(exported),", line) for line in body]
    if isinstance(body, dict):
        for point in body.get("points", []):
            point.pop("channels", None)  # added after the set was written (issue 29)
            links = point.pop("links", None)  # the same (issue 28): the totals, per link
            if links is not None:
                assert sum(c["clicks"] for c in links.values()) == point["clicks"]
                assert sum(c["impressions"] for c in links.values()) == point["impressions"]
    if path.startswith("/api/v1/stats/"):
        for row in body.get("articles", []) + body.get("sections", []):
            row.pop("trending", None)
            row.pop("last_hour", None)
    return body


def answers(app: Flask, staff: dict[str, str], paths: list[str]) -> dict[str, Any]:
    """The answer to each request line: JSON bodies parsed, exports as their lines."""
    client = app.test_client()
    found: dict[str, Any] = {}
    for path in paths:
        response = client.get(path, headers=staff)
        assert response.status_code == 200, (path, response.status_code, response.data)
        found["GET " + path] = stable(path, response.get_json() if response.is_json else
                                      response.get_data(as_text=True).splitlines())
    return found


def test_the_data_set_answers_as_the_engage_that_wrote_it(short_dir: Path) -> None:
    expected = {line: stable(line.removeprefix("GET "), body) for line, body in
                json.loads((DATA / "expected.json").read_text())["answers"].items()}
    shutil.copytree(DATA / AOF_DIR, short_dir / AOF_DIR)
    embedded = EmbeddedRedis(short_dir)
    app = make_app(embedded.ensure_running(), short_dir)
    staff = staff_token(app)

    found = answers(app, staff, [line.removeprefix("GET ") for line in expected])
    # Added since the set was written: its articles, stored without a site, are the
    # default site's, with its reaction set (docs/sites.md).
    for line, body in found.items():
        if line.startswith("GET /api/v1/articles/") and "site" in body:
            assert body.pop("site") == "default", line
            assert body.pop("reaction_set")["choices"] == ["yes", "no"], line
        # And they were registered by editors, never verified from their pages
        # (docs/registration.md).
        if line.startswith("GET /api/v1/articles/") and "source" in body:
            assert (body.pop("source"), body.pop("verified_at"), body.pop("follow_page")) == (
                "editor", None, False), line
        # Figures across articles are the default site's (kept per site since).
        if line.startswith("GET /api/v1/stats/") and "site" in body:
            assert body.pop("site") == "default", line
    assert found == expected
    # The set is not trivial: votes, polls, clicks and events are all in it.
    demo = expected["GET /api/v1/articles/korea-china-reset/reactions"]
    assert demo["total"] > 100
    assert len(expected["GET /api/v1/events/export?format=ndjson"]) > 1000
    assert any(p["results"]["total"] for p in
               expected["GET /api/v1/articles/korea-china-reset/polls"]["polls"])

    # A second site changes nothing of the default site's figures, and has none yet.
    client = app.test_client()
    magazine = {"name": "magazine", "reactions": {"choices": ["😀", "😡"], "reason_choice": None,
                                                  "reasons": []}}
    assert client.post("/api/v1/sites", json=magazine, headers=staff).status_code == 201
    ranked = [line for line in expected if line.startswith("GET /api/v1/stats/")]
    assert len(ranked) >= 3
    again = answers(app, staff, [line.removeprefix("GET ") for line in ranked])
    assert {line: {k: v for k, v in body.items() if k != "site"}
            for line, body in again.items()} == {line: expected[line] for line in ranked}
    assert client.get("/api/v1/stats/articles?site=magazine",
                      headers=staff).json["articles"] == []

    # And it keeps counting from there.
    vote = client.put("/api/v1/articles/korea-china-reset/reactions/mine",
                      headers=new_reader(client), json={"choice": "no"})
    assert vote.status_code == 200, vote.json
    assert vote.json["counts"]["no"] == demo["counts"]["no"] + 1
    with app.app_context():
        get_store().close()
    embedded.stop()
