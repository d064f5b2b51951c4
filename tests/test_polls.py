"""Contract tests of the poll endpoints: every route and status code."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage import errors, metrics, seeds
from engage.store import get_store, polls, tokens
from tests.conftest import make_app, new_reader
from tests.redis_server import RedisServer

POLL = {"question": "Will Seoul and Beijing fully restore ties in 2026?",
        "options": ["Yes", "Partly", "No"]}


def create(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/polls", json={**POLL, **body}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def put_vote(client: FlaskClient, poll_id: str, reader: dict[str, str], options: list[str]) -> Any:
    return client.put(f"/api/v1/polls/{poll_id}/votes/mine", json={"options": options},
                      headers=reader)


def stream(store: Any, poll_id: str) -> list[dict[str, str]]:
    return [fields for _, fields in store.redis.xrange(store.keys.poll_events(poll_id))]


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def sample(name: str, **labels: str) -> float:
    return metrics.app_registry().get_sample_value(name, labels) or 0.0


# -- create ---------------------------------------------------------------------------
def test_create_returns_the_poll_with_short_stable_option_ids(client, editor, article):
    body = create(client, editor, article=article)
    assert body["id"]
    assert body["question"] == POLL["question"]
    assert body["options"] == [
        {"id": "o1", "label": "Yes"}, {"id": "o2", "label": "Partly"}, {"id": "o3", "label": "No"}
    ]
    assert body["status"] == "open"
    assert body["article"] == article
    assert body["multiple"] is False and body["max_choices"] == 1
    assert body["results_visibility"] == "always"
    assert body["closes_at"] is None and body["min_votes"] is None
    assert body["results"] == {"counts": {"o1": 0, "o2": 0, "o3": 0},
                               "percentages": {"o1": 0, "o2": 0, "o3": 0},
                               "total": 0, "ticks": 0}
    assert body["mine"] is None
    again = client.get(f"/api/v1/polls/{body['id']}").json
    assert again["options"] == body["options"] and again["question"] == body["question"]


def test_create_multiple_defaults_max_choices_to_the_options(client, editor):
    body = create(client, editor, article=None, multiple=True)
    assert body["article"] is None
    assert body["multiple"] is True and body["max_choices"] == 3
    assert create(client, editor, multiple=True, max_choices=2)["max_choices"] == 2


def test_create_logs_an_event_and_indexes_the_poll(client, editor, article, store):
    body = create(client, editor, article=article)
    assert stream(store, body["id"]) == [
        {"type": "poll.created", "poll": body["id"], "article": article}
    ]
    assert store.redis.zscore(store.keys.polls, body["id"]) is not None
    assert store.redis.zscore(store.keys.article_polls(article), body["id"]) is not None


FUTURE = iso(datetime.now(UTC) + timedelta(days=3))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"options": ["Only one"]}, "options"),
        ({"options": [f"Option {n}" for n in range(11)]}, "options"),
        ({"options": ["Yes", "yes "]}, "options"),
        ({"options": ["Yes", "   "]}, "options"),
        ({"options": ["Yes", ""]}, "options"),
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "x" * 301}, "question"),
        ({"max_choices": 2}, "max_choices"),
        ({"multiple": True, "max_choices": 4}, "max_choices"),
        ({"multiple": True, "max_choices": 0}, "max_choices"),
        ({"closes_at": "2001-01-01T00:00:00Z"}, "closes_at"),
        ({"closes_at": "tomorrow"}, "closes_at"),
        ({"results": "never"}, "results"),
        ({"min_votes": -1}, "min_votes"),
        ({"min_votes": "5"}, "min_votes"),
        ({"article": "bad id!"}, "article"),
        ({"id": "-starts-with-dash"}, "id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_create_rejects_invalid_polls(client, editor, store, change, field):
    response = client.post("/api/v1/polls", json={**POLL, **change}, headers=editor)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_failed"
    assert field in response.json["error"]["fields"]
    assert store.redis.zcard(store.keys.polls) == 0


def test_create_requires_the_question_and_options(client, editor):
    response = client.post("/api/v1/polls", json={}, headers=editor)
    assert response.status_code == 422
    assert {"question", "options"} <= set(response.json["error"]["fields"])


def test_create_for_an_unknown_article_is_404(client, editor, store):
    response = client.post("/api/v1/polls", json={**POLL, "article": "nope"}, headers=editor)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "unknown_article"
    assert store.redis.zcard(store.keys.polls) == 0


def test_create_needs_an_editor(client, reader):
    assert client.post("/api/v1/polls", json=POLL).status_code == 401
    assert client.post("/api/v1/polls", json=POLL, headers=reader).status_code == 401
    bad = {"Authorization": "Bearer eng_nope.nope"}
    assert client.post("/api/v1/polls", json=POLL, headers=bad).status_code == 401


def test_admin_may_create(client, admin):
    assert create(client, admin)["status"] == "open"


def test_create_body_must_be_json(client, editor):
    response = client.post("/api/v1/polls", data="question=x", headers={
        **editor, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    response = client.post("/api/v1/polls", data="{nope", headers={
        **editor, "Content-Type": "application/json"})
    assert response.status_code == 400


def test_labels_keep_any_script_and_emoji(client, editor):
    labels = ["네, 올해", "部分恢复 🙂", "Non, pas en 2026"]
    body = create(client, editor, question="한중 관계는? 🤝", options=labels)
    again = client.get(f"/api/v1/polls/{body['id']}").json
    assert [o["label"] for o in again["options"]] == labels
    assert again["question"] == "한중 관계는? 🤝"
    edited = client.patch(f"/api/v1/polls/{body['id']}", json={"question": "中韩关系 🌏?"},
                          headers=editor)
    assert edited.json["question"] == "中韩关系 🌏?"


def test_oversized_bodies_and_wrong_methods(client, editor, reader):
    huge = {**POLL, "question": "x" * 70_000}
    response = client.post("/api/v1/polls", json=huge, headers=editor)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    poll_id = create(client, editor)["id"]
    wrong = client.post(f"/api/v1/polls/{poll_id}", json={}, headers=editor)
    assert wrong.status_code == 405
    assert wrong.json["error"]["code"] == "method_not_allowed"
    assert client.post(f"/api/v1/polls/{poll_id}/votes/mine", json={},
                       headers=reader).status_code == 405


def test_create_with_a_chosen_id_and_409_when_taken(client, editor):
    body = create(client, editor, id="my-poll")
    assert body["id"] == "my-poll"
    response = client.post("/api/v1/polls", json={**POLL, "id": "my-poll"}, headers=editor)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "id_taken"


def test_closes_at_is_kept_to_the_millisecond(client, editor):
    when = datetime.now(UTC) + timedelta(hours=1)
    body = create(client, editor, closes_at=when.isoformat())
    shown = datetime.fromisoformat(body["closes_at"])
    assert shown == when.replace(microsecond=when.microsecond // 1000 * 1000)


# -- read -----------------------------------------------------------------------------
def test_get_unknown_or_malformed_poll_is_404(client):
    response = client.get("/api/v1/polls/nope")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "unknown_poll"
    assert client.get("/api/v1/polls/-bad").status_code == 404


def test_anonymous_get_is_cacheable_and_a_reader_get_is_private(client, editor, reader):
    poll_id = create(client, editor)["id"]
    response = client.get(f"/api/v1/polls/{poll_id}")
    assert response.status_code == 200 and response.headers["ETag"]
    assert "public" in response.headers["Cache-Control"]
    again = client.get(f"/api/v1/polls/{poll_id}",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    mine = client.get(f"/api/v1/polls/{poll_id}", headers=reader)
    assert mine.headers["Cache-Control"] == "private, no-store"
    forged = client.get(f"/api/v1/polls/{poll_id}", headers={"X-Engage-Reader": "forged"})
    assert forged.status_code == 401
    assert forged.json["error"]["code"] == "invalid_reader"


def test_an_anonymous_read_is_not_cached_past_closes_at(client, editor, article):
    soon = create(client, editor, article=article,
                  closes_at=iso(datetime.now(UTC) + timedelta(seconds=20)))
    response = client.get(f"/api/v1/polls/{soon['id']}")
    assert response.headers["Cache-Control"] == "public, no-cache"
    assert response.headers["ETag"]
    listed = client.get(f"/api/v1/articles/{article}/polls")
    assert listed.headers["Cache-Control"] == "public, no-cache"
    later = create(client, editor, closes_at=iso(datetime.now(UTC) + timedelta(days=2)))
    assert "max-age" in client.get(f"/api/v1/polls/{later['id']}").headers["Cache-Control"]


# -- vote -----------------------------------------------------------------------------
def test_vote_change_repeat_and_withdraw(client, editor, reader, store):
    poll_id = create(client, editor)["id"]
    response = put_vote(client, poll_id, reader, ["o2"])
    assert response.status_code == 200, response.json
    assert response.json["mine"] == ["o2"]
    assert response.json["results"]["counts"] == {"o1": 0, "o2": 1, "o3": 0}
    assert response.json["results"]["total"] == 1
    assert response.headers["Cache-Control"] == "private, no-store"

    repeat = put_vote(client, poll_id, reader, ["o2"])
    assert repeat.status_code == 200 and repeat.json["results"]["counts"]["o2"] == 1
    assert len(stream(store, poll_id)) == 2  # created + one vote; the repeat logged nothing

    moved = put_vote(client, poll_id, reader, ["o3"])
    assert moved.json["mine"] == ["o3"]
    assert moved.json["results"]["counts"] == {"o1": 0, "o2": 0, "o3": 1}
    assert moved.json["results"]["total"] == 1

    gone = client.delete(f"/api/v1/polls/{poll_id}/votes/mine", headers=reader)
    assert gone.status_code == 200
    assert gone.json["mine"] is None
    assert gone.json["results"]["counts"] == {"o1": 0, "o2": 0, "o3": 0}
    assert gone.json["results"]["total"] == 0
    again = client.delete(f"/api/v1/polls/{poll_id}/votes/mine", headers=reader)
    assert again.status_code == 200 and again.json["mine"] is None

    types = [e["type"] for e in stream(store, poll_id)]
    assert types == ["poll.created", "poll.vote", "poll.change", "poll.withdraw"]
    change = stream(store, poll_id)[2]
    assert change["options"] == "o3" and change["previous"] == "o2" and change["reader"]
    assert change["poll"] == poll_id


def test_get_shows_the_readers_own_vote(client, editor, reader):
    poll_id = create(client, editor, multiple=True)["id"]
    put_vote(client, poll_id, reader, ["o3", "o1"])
    assert client.get(f"/api/v1/polls/{poll_id}", headers=reader).json["mine"] == ["o1", "o3"]
    assert client.get(f"/api/v1/polls/{poll_id}").json["mine"] is None
    other = new_reader(client)
    assert client.get(f"/api/v1/polls/{poll_id}", headers=other).json["mine"] is None


def test_multiple_choice_counts_ticks_and_distinct_voters(client, editor):
    poll_id = create(client, editor, multiple=True)["id"]
    put_vote(client, poll_id, new_reader(client), ["o1", "o2"])
    put_vote(client, poll_id, new_reader(client), ["o1", "o2", "o3"])
    body = put_vote(client, poll_id, new_reader(client), ["o1"]).json
    assert body["results"]["counts"] == {"o1": 3, "o2": 2, "o3": 1}
    assert body["results"]["total"] == 3
    assert body["results"]["ticks"] == 6
    assert body["results"]["percentages"] == {"o1": 50, "o2": 33, "o3": 17}
    assert sum(body["results"]["percentages"].values()) == 100


def test_changing_a_multiple_vote_moves_only_the_ticks_that_differ(client, editor, store):
    poll_id = create(client, editor, multiple=True)["id"]
    reader = new_reader(client)
    put_vote(client, poll_id, reader, ["o1", "o2"])
    body = put_vote(client, poll_id, reader, ["o2", "o3"]).json
    assert body["results"]["counts"] == {"o1": 0, "o2": 1, "o3": 1}
    assert body["results"]["total"] == 1
    hour = store.redis.hgetall(
        store.keys.hour_bucket(store.keys.poll(poll_id), store.now())
    )
    assert hour == {"votes": "2", "+o1": "1", "+o2": "1", "-o1": "1", "+o3": "1"}


def test_vote_needs_a_valid_reader(client, editor):
    poll_id = create(client, editor)["id"]
    response = client.put(f"/api/v1/polls/{poll_id}/votes/mine", json={"options": ["o1"]})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_reader"
    forged = put_vote(client, poll_id, {"X-Engage-Reader": "abc.def"}, ["o1"])
    assert forged.status_code == 401
    assert client.delete(f"/api/v1/polls/{poll_id}/votes/mine").status_code == 401


@pytest.mark.parametrize(
    ("multiple", "options", "message"),
    [
        (False, ["o9"], "Unknown option"),
        (False, ["yes"], "Unknown option"),
        (False, ["o1", "o2"], "one option only"),
        (True, ["o1", "o4"], "Unknown option"),
        (True, ["o1,o2"], "Unknown option"),
    ],
)
def test_vote_with_options_the_poll_does_not_allow_is_422(
    client, editor, reader, store, multiple, options, message
):
    poll_id = create(client, editor, multiple=multiple)["id"]
    response = put_vote(client, poll_id, reader, options)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert message in response.json["error"]["fields"]["options"][0]
    assert store.redis.hgetall(store.keys.poll_counts(poll_id)) == {}
    assert store.redis.hlen(store.keys.poll_voters(poll_id)) == 0
    assert len(stream(store, poll_id)) == 1


def test_the_store_refuses_option_ids_that_would_split(client, editor, store):
    poll_id = create(client, editor, multiple=True)["id"]
    for bad in (["o1,o2"], [""], ["o1", ",o3"]):
        with pytest.raises(errors.InvalidOptions):
            polls.vote(store, poll_id, "r1", "a1", bad)
    assert store.redis.hlen(store.keys.poll_voters(poll_id)) == 0


def test_more_than_max_choices_is_422(client, editor, reader, store):
    poll_id = create(client, editor, options=["A", "B", "C", "D"], multiple=True,
                     max_choices=2)["id"]
    response = put_vote(client, poll_id, reader, ["o1", "o2", "o3"])
    assert response.status_code == 422
    assert "max_choices" in response.json["error"]["fields"]["options"][0]
    assert store.redis.hlen(store.keys.poll_voters(poll_id)) == 0
    assert put_vote(client, poll_id, reader, ["o1", "o4"]).status_code == 200


@pytest.mark.parametrize("body", [{"options": []}, {"options": ["o1", "o1"]}, {},
                                  {"options": "o1"}, {"options": ["o1"], "extra": 1}])
def test_malformed_vote_bodies_are_422(client, editor, reader, body):
    poll_id = create(client, editor, multiple=True)["id"]
    response = client.put(f"/api/v1/polls/{poll_id}/votes/mine", json=body, headers=reader)
    assert response.status_code == 422


def test_vote_on_unknown_poll_is_404(client, reader):
    response = put_vote(client, "nope", reader, ["o1"])
    assert response.status_code == 404
    assert response.json["error"]["code"] == "unknown_poll"
    assert client.delete("/api/v1/polls/nope/votes/mine", headers=reader).status_code == 404


def test_closed_poll_refuses_votes_and_withdrawals_until_reopened(client, editor, reader, store):
    poll_id = create(client, editor)["id"]
    put_vote(client, poll_id, reader, ["o1"])
    closed = client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}, headers=editor)
    assert closed.status_code == 200 and closed.json["status"] == "closed"
    for response in (
        put_vote(client, poll_id, reader, ["o2"]),
        put_vote(client, poll_id, reader, ["o1"]),
        client.delete(f"/api/v1/polls/{poll_id}/votes/mine", headers=reader),
        put_vote(client, poll_id, new_reader(client), ["o2"]),
    ):
        assert response.status_code == 409
        assert response.json["error"]["code"] == "poll_closed"
    assert store.redis.hgetall(store.keys.poll_counts(poll_id)) == {"o1": "1", "_voters": "1"}
    reopened = client.patch(f"/api/v1/polls/{poll_id}", json={"status": "open"}, headers=editor)
    assert reopened.status_code == 200 and reopened.json["status"] == "open"
    assert put_vote(client, poll_id, reader, ["o2"]).status_code == 200
    types = [e["type"] for e in stream(store, poll_id)]
    assert types == ["poll.created", "poll.vote", "poll.closed", "poll.opened", "poll.change"]


def test_a_vote_one_second_after_closes_at_is_409(client, editor, reader, clock):
    closes = clock() + timedelta(minutes=1)
    body = create(client, editor, closes_at=closes.isoformat())
    poll_id = body["id"]
    assert put_vote(client, poll_id, reader, ["o1"]).status_code == 200
    clock.set(closes + timedelta(seconds=1))
    response = put_vote(client, poll_id, new_reader(client), ["o2"])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "poll_closed"
    view = client.get(f"/api/v1/polls/{poll_id}").json
    assert view["status"] == "closed"
    assert view["results"]["counts"] == {"o1": 1, "o2": 0, "o3": 0}


def test_closes_at_is_honoured_at_the_exact_millisecond(client, editor, store):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    closes = start + timedelta(minutes=5)
    poll_id = create(client, editor, closes_at=closes.isoformat())["id"]
    just_before = closes - timedelta(milliseconds=1)
    view, changed = polls.vote(store, poll_id, "r1", "addr", ["o1"], now=just_before)
    assert changed and view.status == "open"
    with pytest.raises(errors.PollClosed):
        polls.vote(store, poll_id, "r2", "addr", ["o1"], now=closes)
    with pytest.raises(errors.PollClosed):
        polls.vote(store, poll_id, "r1", "addr", None, now=closes + timedelta(seconds=1))
    assert polls.get(store, poll_id, now=just_before).status == "open"
    assert polls.get(store, poll_id, now=closes).status == "closed"
    assert polls.get(store, poll_id, now=closes).voters == 1


def test_votes_are_throttled_per_address(client, editor, store, app):
    app.config["THROTTLE_VOTES"] = 3
    poll_id = create(client, editor)["id"]
    reader = new_reader(client)
    for option in ("o1", "o2", "o3"):
        assert put_vote(client, poll_id, reader, [option]).status_code == 200
    assert put_vote(client, poll_id, reader, ["o3"]).status_code == 200  # a repeat is free
    response = put_vote(client, poll_id, new_reader(client), ["o1"])
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json["error"]["code"] == "throttled"
    counts = store.redis.hgetall(store.keys.poll_counts(poll_id))
    assert counts == {"o1": "0", "o2": "0", "o3": "1", "_voters": "1"}


def test_vote_metrics(client, editor, reader):
    poll_id = create(client, editor)["id"]
    accepted = sample("engage_votes_accepted_total", kind="poll")
    duplicate = sample("engage_votes_rejected_total", kind="poll", reason="duplicate")
    invalid = sample("engage_votes_rejected_total", kind="poll", reason="invalid")
    closed = sample("engage_votes_rejected_total", kind="poll", reason="closed")
    unknown = sample("engage_votes_rejected_total", kind="poll", reason="unknown")
    put_vote(client, poll_id, reader, ["o1"])
    put_vote(client, poll_id, reader, ["o1"])
    put_vote(client, poll_id, reader, ["o7"])
    put_vote(client, "nope", reader, ["o1"])
    client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}, headers=editor)
    put_vote(client, poll_id, reader, ["o2"])
    assert sample("engage_votes_accepted_total", kind="poll") == accepted + 1
    assert sample("engage_votes_rejected_total", kind="poll", reason="duplicate") == duplicate + 1
    assert sample("engage_votes_rejected_total", kind="poll", reason="invalid") == invalid + 1
    assert sample("engage_votes_rejected_total", kind="poll", reason="closed") == closed + 1
    assert sample("engage_votes_rejected_total", kind="poll", reason="unknown") == unknown + 1


# -- patch ----------------------------------------------------------------------------
def test_patch_edits_an_open_poll(client, editor, store):
    poll_id = create(client, editor)["id"]
    response = client.patch(f"/api/v1/polls/{poll_id}", headers=editor, json={
        "question": " A sharper question? ", "results": "after_close", "min_votes": 10})
    assert response.status_code == 200, response.json
    assert response.json["question"] == "A sharper question?"
    assert response.json["results_visibility"] == "after_close"
    assert response.json["min_votes"] == 10
    assert response.json["results"] is not None  # editors always see results
    assert stream(store, poll_id)[-1]["type"] == "poll.updated"
    same = client.patch(f"/api/v1/polls/{poll_id}", headers=editor,
                        json={"question": "A sharper question?"})
    assert same.status_code == 200
    assert len(stream(store, poll_id)) == 2  # nothing changed, nothing logged


def test_editing_a_closed_poll_is_409(client, editor, store):
    poll_id = create(client, editor)["id"]
    client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}, headers=editor)
    response = client.patch(f"/api/v1/polls/{poll_id}", json={"question": "Changed?"},
                            headers=editor)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "poll_closed"
    assert store.redis.hget(store.keys.poll(poll_id), "question") == POLL["question"]
    both = client.patch(f"/api/v1/polls/{poll_id}", headers=editor,
                        json={"status": "closed", "results": "after_close"})
    assert both.status_code == 409
    reopen_and_edit = client.patch(f"/api/v1/polls/{poll_id}", headers=editor,
                                   json={"status": "open", "question": "Changed?"})
    assert reopen_and_edit.status_code == 200
    assert reopen_and_edit.json["question"] == "Changed?"


def test_reopening_needs_a_future_closes_at(client, editor, store):
    closes = datetime.now(UTC) + timedelta(hours=1)
    poll_id = create(client, editor, closes_at=closes.isoformat())["id"]
    later = closes + timedelta(seconds=1)
    with pytest.raises(errors.ClosesAtPassed):
        polls.patch(store, poll_id, {"status": "open"}, now=later)
    with pytest.raises(errors.PollFinal):
        polls.patch(store, poll_id, {"question": "New?"}, now=later)
    view, changed = polls.patch(
        store, poll_id, {"status": "open", "closes_at": later + timedelta(days=1)}, now=later
    )
    assert changed and view.status == "open"
    assert stream(store, poll_id)[-1]["type"] == "poll.opened"
    view, _ = polls.patch(store, poll_id, {"closes_at": None}, now=later)
    assert view.closes_at is None and view.status == "open"


def test_reopening_over_http_with_a_past_closes_at_is_422(client, editor, clock):
    closes = clock() + timedelta(minutes=1)
    poll_id = create(client, editor, closes_at=closes.isoformat())["id"]
    assert client.get(f"/api/v1/polls/{poll_id}").json["status"] == "open"
    clock.advance(61)
    assert client.get(f"/api/v1/polls/{poll_id}").json["status"] == "closed"
    response = client.patch(f"/api/v1/polls/{poll_id}", json={"status": "open"}, headers=editor)
    assert response.status_code == 422
    assert "closes_at" in response.json["error"]["fields"]
    past = client.patch(f"/api/v1/polls/{poll_id}", headers=editor,
                        json={"status": "open", "closes_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422
    ok = client.patch(f"/api/v1/polls/{poll_id}", headers=editor,
                      json={"status": "open", "closes_at": None})
    assert ok.status_code == 200 and ok.json["status"] == "open"


@pytest.mark.parametrize("body", [{}, {"status": "paused"}, {"options": ["a", "b"]},
                                  {"question": ""}, {"min_votes": -3}])
def test_patch_rejects_invalid_changes(client, editor, body):
    poll_id = create(client, editor)["id"]
    response = client.patch(f"/api/v1/polls/{poll_id}", json=body, headers=editor)
    assert response.status_code == 422


def test_patch_needs_an_editor_and_a_known_poll(client, editor, reader):
    poll_id = create(client, editor)["id"]
    assert client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}).status_code == 401
    assert client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"},
                        headers=reader).status_code == 401
    missing = client.patch("/api/v1/polls/nope", json={"status": "closed"}, headers=editor)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "unknown_poll"


def test_closing_twice_changes_nothing(client, editor, store):
    poll_id = create(client, editor)["id"]
    client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}, headers=editor)
    again = client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}, headers=editor)
    assert again.status_code == 200
    assert [e["type"] for e in stream(store, poll_id)] == ["poll.created", "poll.closed"]


# -- delete ---------------------------------------------------------------------------
def test_delete_needs_an_admin(client, editor, admin, article, reader, store):
    poll_id = create(client, editor, article=article)["id"]
    put_vote(client, poll_id, reader, ["o1"])
    assert client.delete(f"/api/v1/polls/{poll_id}").status_code == 401
    forbidden = client.delete(f"/api/v1/polls/{poll_id}", headers=editor)
    assert forbidden.status_code == 403 and forbidden.json["error"]["code"] == "forbidden"
    response = client.delete(f"/api/v1/polls/{poll_id}", headers=admin)
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"/api/v1/polls/{poll_id}").status_code == 404
    assert put_vote(client, poll_id, reader, ["o1"]).status_code == 404
    assert client.get(f"/api/v1/articles/{article}/polls").json == {"polls": []}
    assert store.redis.exists(store.keys.poll_counts(poll_id)) == 0
    assert store.redis.exists(store.keys.poll_voters(poll_id)) == 0
    assert stream(store, poll_id)[-1]["type"] == "poll.deleted"
    assert store.redis.ttl(store.keys.poll_events(poll_id)) > 0
    assert client.delete(f"/api/v1/polls/{poll_id}", headers=admin).status_code == 404
    assert polls.list_page(store)[0] == []


def test_a_recreated_id_starts_from_zero(client, editor, admin, reader):
    create(client, editor, id="again")
    put_vote(client, "again", reader, ["o1"])
    client.delete("/api/v1/polls/again", headers=admin)
    body = create(client, editor, id="again")
    assert body["results"]["total"] == 0
    assert client.get("/api/v1/polls/again", headers=reader).json["mine"] is None


# -- lists ----------------------------------------------------------------------------
def test_article_polls(client, editor, article, reader):
    first = create(client, editor, article=article)["id"]
    second = create(client, editor, article=article, question="Another?")["id"]
    create(client, editor)  # not attached
    put_vote(client, first, reader, ["o1"])
    anonymous = client.get(f"/api/v1/articles/{article}/polls")
    assert anonymous.status_code == 200
    assert [p["id"] for p in anonymous.json["polls"]] == [first, second]
    assert anonymous.headers["ETag"]
    personal = client.get(f"/api/v1/articles/{article}/polls", headers=reader).json["polls"]
    assert personal[0]["mine"] == ["o1"] and personal[1]["mine"] is None
    missing = client.get("/api/v1/articles/nope/polls")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "unknown_article"


def test_for_articles_groups_polls(client, editor, article, store):
    poll_id = create(client, editor, article=article)["id"]
    found = polls.for_articles(store, [article, "other"])
    assert [p.id for p in found[article]] == [poll_id]
    assert found["other"] == []


def test_editor_list_filters_by_status(client, editor, reader):
    open_id = create(client, editor)["id"]
    closed_id = create(client, editor, question="Closed?")["id"]
    client.patch(f"/api/v1/polls/{closed_id}", json={"status": "closed"}, headers=editor)
    everything = client.get("/api/v1/polls", headers=editor)
    assert everything.status_code == 200
    assert {p["id"] for p in everything.json["polls"]} == {open_id, closed_id}
    assert all(p["results"] is not None for p in everything.json["polls"])
    only_open = client.get("/api/v1/polls?status=open", headers=editor).json["polls"]
    assert [p["id"] for p in only_open] == [open_id]
    only_closed = client.get("/api/v1/polls?status=closed", headers=editor).json["polls"]
    assert [p["id"] for p in only_closed] == [closed_id]
    assert client.get("/api/v1/polls?status=maybe", headers=editor).status_code == 422
    assert client.get("/api/v1/polls").status_code == 401
    assert client.get("/api/v1/polls", headers=reader).status_code == 401


# -- export ---------------------------------------------------------------------------
def test_csv_export_has_results_and_events(client, editor, store):
    poll_id = create(client, editor, options=["=cmd()", "Fine"])["id"]
    first, second = new_reader(client), new_reader(client)
    put_vote(client, poll_id, first, ["o1"])
    put_vote(client, poll_id, second, ["o1"])
    put_vote(client, poll_id, second, ["o2"])
    response = client.get(f"/api/v1/polls/{poll_id}/export.csv", headers=editor)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == f'attachment; filename="poll-{poll_id}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    results = [r for r in rows if r["record"] == "result"]
    assert [(r["option"], r["votes"], r["percentage"]) for r in results] == [
        ("o1", "1", "50"), ("o2", "1", "50"), ("_voters", "2", "")
    ]
    assert results[0]["label"] == "'=cmd()"  # never a live formula in a spreadsheet
    event_rows = [r for r in rows if r["record"] == "event"]
    assert [r["type"] for r in event_rows] == ["poll.created", "poll.vote", "poll.vote",
                                               "poll.change"]
    assert event_rows[-1]["options"] == "o2" and event_rows[-1]["previous"] == "o1"
    assert all(datetime.fromisoformat(r["time"]) for r in event_rows)


def test_csv_export_pages_through_long_streams(client, editor, store):
    poll_id = create(client, editor)["id"]
    for n in range(1203):
        polls.vote(store, poll_id, f"r{n}", f"a{n}", ["o1"])
    response = client.get(f"/api/v1/polls/{poll_id}/export.csv", headers=editor)
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sum(1 for r in rows if r["record"] == "event") == 1204


def test_csv_export_needs_an_editor_and_a_poll(client, editor, reader):
    poll_id = create(client, editor)["id"]
    assert client.get(f"/api/v1/polls/{poll_id}/export.csv").status_code == 401
    assert client.get(f"/api/v1/polls/{poll_id}/export.csv", headers=reader).status_code == 401
    assert client.get("/api/v1/polls/nope/export.csv", headers=editor).status_code == 404


# -- seeds ----------------------------------------------------------------------------
def test_seed_poll_loads_once(app, store):
    seeds.load(store, app.config["SEEDS_DIR"])
    seeds.load(store, app.config["SEEDS_DIR"])
    view = polls.get(store, "korea-china-2026")
    assert view is not None and view.article == "korea-china-reset"
    assert [p.id for p in polls.for_articles(store, ["korea-china-reset"])[
        "korea-china-reset"]] == ["korea-china-2026"]
    assert len(polls.list_page(store)[0]) == 1


# -- storage outage -------------------------------------------------------------------
def test_poll_routes_answer_503_when_redis_is_gone(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        app = make_app(server.url, tmp_path, REDIS_RETRIES=0)
        client = app.test_client()
        with app.app_context():
            token = tokens.create(get_store(), "editor", "outage")[0]
        staff = {"Authorization": f"Bearer {token}"}
        poll_id = create(client, staff)["id"]
        reader = new_reader(client)
        unavailable = sample("engage_votes_rejected_total", kind="poll", reason="unavailable")
        server.kill()
        for response in (
            client.get(f"/api/v1/polls/{poll_id}"),
            put_vote(client, poll_id, reader, ["o1"]),
            client.delete(f"/api/v1/polls/{poll_id}/votes/mine", headers=reader),
            client.get("/api/v1/articles/korea-china-reset/polls"),
        ):
            assert response.status_code == 503, response.json
            assert response.json["error"]["code"] == "storage_unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        assert sample("engage_votes_rejected_total", kind="poll",
                      reason="unavailable") == unavailable + 2
    finally:
        server.stop()
