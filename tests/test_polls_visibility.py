"""Who sees a poll's results, for each visibility mode and the minimum number of voters.

Each mode is walked through its life: a reader before voting, after voting and after
the poll closed (both a voter and a reader who never voted), with an editor and an
anonymous visitor alongside. Staff always see results; readers see what the mode says.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import new_reader

HIDDEN, SHOWN = False, True

# mode -> what (voter before voting, voter after voting, voter after close,
#           non-voter after close, anonymous while open, anonymous after close) see
MATRIX = {
    "always": (SHOWN, SHOWN, SHOWN, SHOWN, SHOWN, SHOWN),
    "after_vote": (HIDDEN, SHOWN, SHOWN, SHOWN, HIDDEN, SHOWN),
    "after_close": (HIDDEN, HIDDEN, SHOWN, SHOWN, HIDDEN, SHOWN),
}


def sees(client: FlaskClient, poll_id: str, headers: dict[str, str]) -> bool:
    """Whether this caller gets results, checked on the single read and the article list."""
    single = client.get(f"/api/v1/polls/{poll_id}", headers=headers)
    assert single.status_code == 200, single.json
    listed = client.get("/api/v1/articles/korea-china-reset/polls", headers=headers)
    assert listed.status_code == 200
    [in_list] = [p for p in listed.json["polls"] if p["id"] == poll_id]
    assert (single.json["results"] is None) == (in_list["results"] is None)
    return single.json["results"] is not None


def vote(client: FlaskClient, poll_id: str, reader: dict[str, str], option: str) -> Any:
    response = client.put(f"/api/v1/polls/{poll_id}/votes/mine",
                          json={"options": [option]}, headers=reader)
    assert response.status_code == 200, response.json
    return response.json


@pytest.mark.parametrize("mode", list(MATRIX))
def test_visibility_matrix(client, editor, article, mode):
    expected = MATRIX[mode]
    created = client.post("/api/v1/polls", headers=editor, json={
        "question": "Does the thaw last?", "options": ["Yes", "No"],
        "article": article, "results": mode})
    assert created.status_code == 201
    poll_id = created.json["id"]
    assert created.json["results_visibility"] == mode
    assert created.json["results"] is not None  # the creating editor sees them

    voter, bystander = new_reader(client), new_reader(client)
    assert sees(client, poll_id, voter) is expected[0]
    assert sees(client, poll_id, {}) is expected[4]
    assert sees(client, poll_id, editor) is True

    body = vote(client, poll_id, voter, "o1")
    assert (body["results"] is not None) is expected[1]  # the vote's own reply agrees
    assert sees(client, poll_id, voter) is expected[1]
    assert sees(client, poll_id, bystander) is expected[0]
    assert sees(client, poll_id, editor) is True

    closed = client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}, headers=editor)
    assert closed.status_code == 200 and closed.json["results"]["counts"]["o1"] == 1
    assert sees(client, poll_id, voter) is expected[2]
    assert sees(client, poll_id, bystander) is expected[3]
    assert sees(client, poll_id, {}) is expected[5]
    assert sees(client, poll_id, editor) is True


def test_withdrawing_hides_after_vote_results_again(client, editor, article):
    poll_id = client.post("/api/v1/polls", headers=editor, json={
        "question": "Q?", "options": ["A", "B"], "article": article,
        "results": "after_vote"}).json["id"]
    reader = new_reader(client)
    vote(client, poll_id, reader, "o2")
    assert sees(client, poll_id, reader)
    gone = client.delete(f"/api/v1/polls/{poll_id}/votes/mine", headers=reader)
    assert gone.json["results"] is None
    assert not sees(client, poll_id, reader)


@pytest.mark.parametrize("mode", list(MATRIX))
def test_min_votes_hides_results_from_readers_until_reached(client, editor, article, mode):
    poll_id = client.post("/api/v1/polls", headers=editor, json={
        "question": "Q?", "options": ["A", "B"], "article": article,
        "results": mode, "min_votes": 3}).json["id"]
    readers = [new_reader(client) for _ in range(3)]
    vote(client, poll_id, readers[0], "o1")
    vote(client, poll_id, readers[1], "o2")
    for reader in readers[:2]:
        assert not sees(client, poll_id, reader)  # below the minimum, whatever the mode
    assert sees(client, poll_id, editor)
    staff_view = client.get(f"/api/v1/polls/{poll_id}", headers=editor).json
    assert staff_view["results"]["total"] == 2 and staff_view["min_votes"] == 3

    vote(client, poll_id, readers[2], "o1")
    assert sees(client, poll_id, readers[0]) is (mode != "after_close")
    client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}, headers=editor)
    assert sees(client, poll_id, readers[0])
    assert sees(client, poll_id, {})


def test_min_votes_still_hides_a_closed_poll_below_it(client, editor, article):
    poll_id = client.post("/api/v1/polls", headers=editor, json={
        "question": "Q?", "options": ["A", "B"], "article": article,
        "results": "after_close", "min_votes": 5}).json["id"]
    reader = new_reader(client)
    vote(client, poll_id, reader, "o1")
    client.patch(f"/api/v1/polls/{poll_id}", json={"status": "closed"}, headers=editor)
    assert not sees(client, poll_id, reader)
    assert not sees(client, poll_id, {})
    assert sees(client, poll_id, editor)


def test_an_invalid_bearer_is_refused_rather_than_treated_as_a_reader(client, editor):
    poll_id = client.post("/api/v1/polls", headers=editor, json={
        "question": "Q?", "options": ["A", "B"], "results": "after_close"}).json["id"]
    response = client.get(f"/api/v1/polls/{poll_id}",
                          headers={"Authorization": "Bearer eng_nope.nope"})
    assert response.status_code == 401


def test_the_mode_can_change_while_open(client, editor, article):
    poll_id = client.post("/api/v1/polls", headers=editor, json={
        "question": "Q?", "options": ["A", "B"], "article": article,
        "results": "after_close"}).json["id"]
    reader = new_reader(client)
    vote(client, poll_id, reader, "o1")
    assert not sees(client, poll_id, reader)
    client.patch(f"/api/v1/polls/{poll_id}", json={"results": "after_vote"}, headers=editor)
    assert sees(client, poll_id, reader)
    assert not sees(client, poll_id, new_reader(client))
