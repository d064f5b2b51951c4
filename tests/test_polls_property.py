"""Random sequences of vote / change / withdraw / close / reopen / time passing, run
against the real store (Lua on the test Redis) and a plain Python model: after every
step the stored results, every reader's own vote, the status and the event log agree
with the model.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from engage import errors
from engage.api.polls import poll_body
from engage.store import polls

READERS = [f"reader-{n}" for n in range(5)]
OPTIONS = ["o1", "o2", "o3", "o4"]
ANY_OPTION = [*OPTIONS, "o5", "o10", "x"]  # some ids the poll does not have
CLOSES_IN = timedelta(seconds=90)
_ids = itertools.count()


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"THROTTLE_VOTES": 1_000_000}


class PollModel(RuleBasedStateMachine):
    store: Any = None
    multiple = False
    max_choices = 1

    def __init__(self) -> None:
        super().__init__()
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.poll_id = f"prop-{next(_ids)}"
        data: dict[str, Any] = {
            "question": "Model?", "options": ["A", "B", "C", "D"], "article": None,
            "multiple": self.multiple, "closes_at": self.now + CLOSES_IN,
            "results": "after_close", "max_choices": self.max_choices if self.multiple else None,
        }
        polls.create(self.store, data, poll_id=self.poll_id, now=self.now)
        self.status = "open"  # the stored status
        self.closes_at: datetime | None = self.now + CLOSES_IN
        self.votes: dict[str, frozenset[str]] = {}
        self.accepted = 0  # vote, change and withdraw events expected in the log

    # -- the model ------------------------------------------------------------------
    def closed(self) -> bool:
        return self.status != "open" or (self.closes_at is not None and self.now >= self.closes_at)

    def invalid(self, options: list[str]) -> bool:
        if any(option not in OPTIONS for option in options):
            return True
        return len(options) > (self.max_choices if self.multiple else 1)

    # -- rules ----------------------------------------------------------------------
    @rule(reader=st.sampled_from(READERS),
          options=st.lists(st.sampled_from(ANY_OPTION), min_size=1, max_size=5, unique=True))
    def vote(self, reader: str, options: list[str]) -> None:
        expected_error: type[Exception] | None = None
        if self.closed():
            expected_error = errors.PollClosed
        elif self.invalid(options):
            expected_error = errors.InvalidOptions
        try:
            view, changed = polls.vote(self.store, self.poll_id, reader, "addr", options,
                                       now=self.now)
        except (errors.PollClosed, errors.InvalidOptions) as exc:
            assert type(exc) is expected_error, exc
            return
        assert expected_error is None
        new = frozenset(options)
        assert changed == (self.votes.get(reader) != new)
        self.accepted += int(changed)
        self.votes[reader] = new
        assert view.mine is not None and set(view.mine) == new

    @rule(reader=st.sampled_from(READERS))
    def withdraw(self, reader: str) -> None:
        try:
            view, changed = polls.vote(self.store, self.poll_id, reader, "addr", None,
                                       now=self.now)
        except errors.PollClosed:
            assert self.closed()
            return
        assert not self.closed()
        assert changed == (reader in self.votes)
        self.accepted += int(changed)
        self.votes.pop(reader, None)
        assert view.mine is None

    @rule()
    def close(self) -> None:
        view, changed = polls.patch(self.store, self.poll_id, {"status": "closed"}, now=self.now)
        assert changed == (self.status != "closed")
        self.status = "closed"
        assert view.status == "closed"

    @rule(closes_in=st.one_of(st.none(), st.just("keep"), st.integers(-30, 120)))
    def reopen(self, closes_in: int | str | None) -> None:
        data: dict[str, Any] = {"status": "open"}
        closes_at = self.closes_at
        if closes_in != "keep":
            closes_at = None if closes_in is None else self.now + timedelta(seconds=int(closes_in))
            data["closes_at"] = closes_at
        refused = closes_at is not None and closes_at <= self.now
        try:
            view, _ = polls.patch(self.store, self.poll_id, data, now=self.now)
        except errors.ClosesAtPassed:
            assert refused
            return
        assert not refused
        self.status, self.closes_at = "open", closes_at
        assert view.status == "open"

    @rule(seconds=st.integers(0, 45))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    # -- what must always hold ------------------------------------------------------
    @invariant()
    def stored_results_equal_the_model(self) -> None:
        poll = polls.get(self.store, self.poll_id, now=self.now)
        assert poll is not None
        view = poll_body(poll, staff=True)
        expected = {o: sum(o in chosen for chosen in self.votes.values()) for o in OPTIONS}
        assert view["results"]["counts"] == expected
        assert view["results"]["total"] == len(self.votes)
        assert view["results"]["ticks"] == sum(expected.values())
        percentages = view["results"]["percentages"]
        assert sum(percentages.values()) == (100 if self.votes else 0)
        assert view["status"] == ("closed" if self.closed() else "open")

    @invariant()
    def each_reader_sees_their_own_vote(self) -> None:
        for reader in READERS:
            poll = polls.get(self.store, self.poll_id, reader=reader, now=self.now)
            assert poll is not None
            view = poll_body(poll)
            mine = self.votes.get(reader)
            assert (set(view["mine"]) if view["mine"] else None) == (set(mine) if mine else None)
            # after_close: a reader sees results exactly when the poll is closed.
            assert (view["results"] is not None) == self.closed()

    @invariant()
    def the_log_has_one_event_per_accepted_change(self) -> None:
        entries = self.store.redis.xrange(self.store.keys.poll_events(self.poll_id))
        votes = [f for _, f in entries if f["type"] in ("poll.vote", "poll.change",
                                                         "poll.withdraw")]
        assert len(votes) == self.accepted


SETTINGS = settings(
    max_examples=35, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize(("multiple", "max_choices"), [(False, 1), (True, 3)])
def test_poll_store_matches_the_model(store, multiple, max_choices):
    machine = type("Machine", (PollModel,), {
        "store": store, "multiple": multiple, "max_choices": max_choices,
    })
    run_state_machine_as_test(machine, settings=SETTINGS)
