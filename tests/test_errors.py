"""The store's refusals, raised from the scripts' statuses, and the HTTP answer of each."""

from __future__ import annotations

import re

import flask
import pytest
from flask import Flask

from engage import errors
from engage.store import scripts

# Every refusal, raised as a script returns it, with what a client sees for it: status,
# code, message, fields; and what a vote refused with it is counted as.
ANSWERS: list[tuple[list[object], int, str, str, dict[str, list[str]] | None, str]] = [
    (["UnknownArticle"], 404, "unknown_article", "No article is registered under this id.",
     None, "unknown"),
    (["UnknownPoll"], 404, "unknown_poll", "No poll exists under this id.", None, "unknown"),
    (["UnknownLink"], 404, "not_found", "No such link.", None, "unknown"),
    (["IdTaken"], 409, "id_taken", "That id is already in use.", None, "closed"),
    (["Throttled", 7], 429, "throttled",
     "Too many votes from your network on this item; try again later.", None, "throttled"),
    (["PollClosed"], 409, "poll_closed", "The poll is closed; votes are no longer accepted.",
     None, "closed"),
    (["PollFinal"], 409, "poll_closed", "The poll is closed; reopen it before editing it.",
     None, "closed"),
    (["InvalidOptions", "single"], 422, "validation_failed", "Some fields are invalid.",
     {"options": ["This poll takes one option only."]}, "invalid"),
    (["ClosesAtPassed"], 422, "validation_failed", "Some fields are invalid.",
     {"closes_at": ["The poll's closes_at has passed; send a later one (or null) to "
                    "reopen it."]}, "invalid"),
    (["RateLimited", 7], 429, "rate_limited", "Too many requests; slow down and retry later.",
     None, "throttled"),
    (["InvalidChoice", "choice", "yes,no"], 422, "validation_failed", "Some fields are invalid.",
     {"choice": ["Must be one of: yes, no."]}, "invalid"),
]


def test_every_refusal_has_an_answer() -> None:
    assert [reply[0] for reply, *_ in ANSWERS] == [r.__name__ for r in errors.REFUSALS]


@pytest.mark.parametrize(("reply", "status", "code", "message", "fields", "reason"), ANSWERS,
                         ids=[a[0][0] for a in ANSWERS])
def test_each_refusal_keeps_its_http_answer(
    app: Flask, reply: list[object], status: int, code: str, message: str,
    fields: dict[str, list[str]] | None, reason: str,
) -> None:
    number = -1 - [r.__name__ for r in errors.REFUSALS].index(str(reply[0]))
    with pytest.raises(errors.EngageError) as caught:
        scripts.result([number, *reply[1:]])
    assert type(caught.value).__name__ == reply[0]
    with app.test_request_context():
        response = errors.handle_http_exception(caught.value)
        assert flask.g.refusal_reason == reason
    body = response.get_json()["error"]
    assert response.status_code == status
    assert (body["code"], body["message"], body.get("fields")) == (code, message, fields)
    if status == 429:
        assert response.headers["Retry-After"] == "7"


def test_scripts_name_every_refusal() -> None:
    """A refusal in the Lua is spelled by its class name, never as a bare number."""
    for name, source in scripts.ALL.items():
        assert not re.search(r"\{\s*-\d", source), name
        for refused in re.findall(r"return \{([A-Z]\w*)", source):
            assert refused in {"CHANGED", "UNCHANGED", *(r.__name__ for r in errors.REFUSALS)}


def test_a_result_keeps_the_scripts_values() -> None:
    result = scripts.result([int(scripts.Status.UNCHANGED), "yes"])
    assert (result.status, result.values) == (scripts.Status.UNCHANGED, ["yes"])


def test_a_location_the_server_cannot_send_is_a_logged_json_500(
    app: Flask, lines: list[str]
) -> None:
    """werkzeug converts Location only while sending, after every hook: a value it cannot
    convert must be answered (and logged) as the 500 it is, not as the 302 it was."""
    from flask import Response

    def broken() -> Response:
        return Response(status=302, headers={"Location": "https://example.com:99999/"})

    app.add_url_rule("/broken-location", "broken_location", broken)
    response = app.test_client().get("/broken-location")
    assert response.status_code == 500
    assert response.json["error"]["code"] == "internal_error"
    assert "Location" not in response.headers
    assert any(" /broken-location 500 " in line for line in lines), lines


def test_strict_json_refuses_what_python_would_read() -> None:
    from engage.api import loads_strict

    assert loads_strict(b'{"a": [1, 2.5, "\\ud83d\\ude00"]}') == {"a": [1, 2.5, "\U0001f600"]}
    for raw in (b'{"a": NaN}', b"Infinity", b"1e400", b'{"a": 1, "a": 1}', b"9" * 5000,
                b'"\\ud800"', b"\xff", b"[" * 100_000):
        with pytest.raises((ValueError, RecursionError)):
            loads_strict(raw)
