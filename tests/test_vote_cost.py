"""Work a vote does once per process stays out of each vote (issue 30): no schema is
built for a vote (each route's are built by its first answer: a nested schema on first
use), and the client's address is parsed once, for its group and its wider networks
alike. Round trips are tests/test_roundtrips.py's."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from flask.testing import FlaskClient
from marshmallow import Schema

from engage.identity import parse_address
from tests.conftest import new_reader

MINE = "/api/v1/articles/korea-china-reset/reactions/mine"
WATCHED = {Schema.__init__.__code__: "schema built", parse_address.__code__: "address parsed"}


def calls_during(request: Callable[[], Any]) -> Counter[str]:
    """How often each of WATCHED ran while `request` was answered."""
    seen: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        code: CodeType = frame.f_code
        if event == "call" and code in WATCHED:
            seen[WATCHED[code]] += 1

    sys.setprofile(profile)
    try:
        response = request()
    finally:
        sys.setprofile(None)
    assert response.status_code == 200, response.get_json()
    return seen


def test_a_reaction_vote_builds_no_schema_and_parses_the_address_once(
        client: FlaskClient, article: str) -> None:
    first = new_reader(client)  # the script's load and each route's first answer
    client.put(MINE, json={"choice": "no"}, headers=first)
    client.delete(MINE, headers=first)
    reader = new_reader(client)
    for request in (lambda: client.put(MINE, json={"choice": "yes"}, headers=reader),
                    lambda: client.put(MINE, json={"choice": "no"}, headers=reader),
                    lambda: client.delete(MINE, headers=reader)):
        assert calls_during(request) == {"address parsed": 1}


def test_a_poll_vote_builds_no_schema_and_parses_the_address_once(
        client: FlaskClient, editor: dict[str, str]) -> None:
    poll = client.post("/api/v1/polls", headers=editor, json={
        "question": "Will the talks last?", "options": ["Yes", "No"]}).get_json()
    votes = f"/api/v1/polls/{poll['id']}/votes/mine"
    first = poll["options"][0]["id"]
    warm = new_reader(client)
    client.put(votes, json={"options": [first]}, headers=warm)
    client.delete(votes, headers=warm)
    reader = new_reader(client)
    assert calls_during(lambda: client.put(votes, json={"options": [first]},
                                           headers=reader)) == {"address parsed": 1}
    assert calls_during(lambda: client.delete(votes, headers=reader)) == {"address parsed": 1}
