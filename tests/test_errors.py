"""The store's refusals and script statuses, and the HTTP answer each refusal gets."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from engage import errors
from engage.store import exceptions as refusals
from engage.store import scripts

# Every refusal, with what a client sees for it: status, code, message, fields.
ANSWERS: list[tuple[refusals.StoreRefusal, int, str, str, dict[str, list[str]] | None]] = [
    (refusals.UnknownArticle(), 404, "unknown_article",
     "No article is registered under this id.", None),
    (refusals.UnknownPoll(), 404, "unknown_poll", "No poll exists under this id.", None),
    (refusals.IdTaken(), 409, "id_taken", "That id is already in use.", None),
    (refusals.Throttled(7), 429, "throttled",
     "Too many votes from your network on this item; try again later.", None),
    (refusals.PollClosed(), 409, "poll_closed",
     "The poll is closed; votes are no longer accepted.", None),
    (refusals.PollFinal(), 409, "poll_closed",
     "The poll is closed; reopen it before editing it.", None),
    (refusals.InvalidOptions("single"), 422, "validation_failed", "Some fields are invalid.",
     {"options": ["This poll takes one option only."]}),
    (refusals.ClosesAtPassed(), 422, "validation_failed", "Some fields are invalid.",
     {"closes_at": ["The poll's closes_at has passed; send a later one (or null) to "
                    "reopen it."]}),
]


def _all_refusals(cls: type[refusals.StoreRefusal]) -> set[type[refusals.StoreRefusal]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_refusals(sub)
    return found


def test_every_refusal_has_an_answer() -> None:
    assert {type(refusal) for refusal, *_ in ANSWERS} == _all_refusals(refusals.StoreRefusal)


@pytest.mark.parametrize(("refusal", "status", "code", "message", "fields"), ANSWERS,
                         ids=[type(a[0]).__name__ for a in ANSWERS])
def test_each_refusal_keeps_its_http_answer(app: Flask, refusal: refusals.StoreRefusal,
                                            status: int, code: str, message: str,
                                            fields: dict[str, list[str]] | None) -> None:
    with app.test_request_context():
        response = errors.handle_refusal(refusal)
    body = response.get_json()["error"]
    assert response.status_code == status
    assert (body["code"], body["message"], body.get("fields")) == (code, message, fields)
    if isinstance(refusal, refusals.Throttled):
        assert response.headers["Retry-After"] == "7"


def test_scripts_name_every_refusal() -> None:
    """A refusal in the Lua is spelled by its Status name, never as a bare number."""
    for name, source in scripts.ALL.items():
        assert not re.search(r"\{\s*-\d", source), name


def test_a_status_maps_to_its_refusal_with_the_scripts_values() -> None:
    table: scripts.Refusals = {scripts.Status.THROTTLED: refusals.Throttled}
    with pytest.raises(refusals.Throttled) as caught:
        scripts.raise_for_status([int(scripts.Status.THROTTLED), 12], table)
    assert caught.value.retry_after == 12
    result = scripts.raise_for_status([int(scripts.Status.UNCHANGED), "yes"], table)
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
