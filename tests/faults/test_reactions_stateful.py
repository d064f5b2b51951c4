"""The reactions store under random interleavings of vote, change, withdraw and read.

A hypothesis state machine drives `store.reactions` directly against the real test
Redis with many readers on a few articles; after every step the stored counts, the
reasons and each reader's own vote must equal a plain-Python model.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from engage import errors
from engage.store import get_store, reactions
from tests.conftest import make_app
from tests.faults import register_article
from tests.redis_server import RedisServer

ARTICLES = ("alpha", "beta", "gamma")
READERS = tuple(f"reader-{n:02d}" for n in range(24))
CHOICES = ("yes", "no")
REASONS = ("outdated", "inaccurate", "biased")
ADDRESSES = ("addr-1", "addr-2")


def run_machine(redis_server: RedisServer, tmp_path: Path) -> None:
    app = make_app(redis_server.url, tmp_path, THROTTLE_VOTES=10**9)

    class ReactionsMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            redis_server.client().flushall()
            for article_id in ARTICLES:
                register_article(app, article_id)
            self.ctx = app.app_context()
            self.ctx.push()
            self.store = get_store()
            # The flush above went behind the store's back: no anonymous counts it cached
            # in an earlier example may stand (its votes clear their own entries).
            self.store.counts_cache.entries.clear()
            # article -> reader -> (choice, reason or None)
            self.model: dict[str, dict[str, tuple[str, str | None]]] = {
                a: {} for a in ARTICLES
            }

        def teardown(self) -> None:
            self.ctx.pop()

        def _expect(self, article_id: str, reader: str, result: reactions.Reactions) -> None:
            held = self.model[article_id].get(reader)
            assert result.mine == (held[0] if held else None)
            assert result.reason == (held[1] if held else None)
            assert result.counts == self.model_counts(article_id)

        def model_counts(self, article_id: str) -> dict[str, int]:
            tally = Counter(choice for choice, _ in self.model[article_id].values())
            return {choice: tally.get(choice, 0) for choice in CHOICES}

        @rule(
            article_id=st.sampled_from(ARTICLES),
            reader=st.sampled_from(READERS),
            choice=st.sampled_from(CHOICES),
            reason=st.none() | st.sampled_from(REASONS),
            address=st.sampled_from(ADDRESSES),
        )
        def vote_or_change(
            self, article_id: str, reader: str, choice: str, reason: str | None, address: str
        ) -> None:
            reason = reason if choice == "no" else None
            before = self.model[article_id].get(reader)
            result, changed = reactions.vote(
                self.store, article_id, reader, address, choice, reason
            )
            self.model[article_id][reader] = (choice, reason)
            assert changed == (before != (choice, reason))
            self._expect(article_id, reader, result)

        @rule(
            article_id=st.sampled_from(ARTICLES),
            reader=st.sampled_from(READERS),
            address=st.sampled_from(ADDRESSES),
        )
        def withdraw(self, article_id: str, reader: str, address: str) -> None:
            before = self.model[article_id].pop(reader, None)
            result, changed = reactions.vote(self.store, article_id, reader, address, None)
            assert changed == (before is not None)
            self._expect(article_id, reader, result)

        @rule(article_id=st.sampled_from(ARTICLES), reader=st.sampled_from(READERS))
        def read_one(self, article_id: str, reader: str) -> None:
            result = reactions.read(self.store, article_id, reader)
            assert result is not None
            self._expect(article_id, reader, result)

        @rule(reader=st.sampled_from(READERS), choice=st.sampled_from(CHOICES))
        def vote_on_unknown_article(self, reader: str, choice: str) -> None:
            with pytest.raises(errors.UnknownArticle):
                reactions.vote(self.store, "never-registered", reader, "addr-1", choice)

        @invariant()
        def store_matches_model(self) -> None:
            found = reactions.read_many(self.store, [*ARTICLES, "never-registered"])
            assert found["never-registered"] is None
            for article_id in ARTICLES:
                result = found[article_id]
                assert result is not None
                assert result.counts == self.model_counts(article_id)
                assert result.total == len(self.model[article_id])
                expected_reasons = Counter(
                    r for _, r in self.model[article_id].values() if r is not None
                )
                assert reactions.reasons(self.store, article_id) == dict(expected_reasons)
                voters = self.store.redis.hlen(self.store.keys.article_voters(article_id))
                assert voters == len(self.model[article_id])
            assert not self.store.redis.exists(self.store.keys.article("never-registered"))

    ReactionsMachine.TestCase.settings = settings(
        max_examples=60,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    runner: Any = ReactionsMachine.TestCase("runTest")
    runner.runTest()


def test_reactions_store_matches_model(redis_server: RedisServer, tmp_path: Path) -> None:
    run_machine(redis_server, tmp_path)
