"""Key builders: bucket names are the UTC hour and day of a moment, whatever order the
times come in and whatever their offset."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from engage.store.keys import Keys


def test_bucket_names_match_fresh_formatting_across_hours_days_and_offsets() -> None:
    keys = Keys("p")
    owner = keys.article("a")
    rng = random.Random(7)
    base = datetime(2026, 12, 31, 22, 59, 59, 999_000, tzinfo=UTC)
    moments = [base + timedelta(milliseconds=step) for step in range(0, 3 * 3_600_000, 899_999)]
    moments += [base + timedelta(seconds=rng.randint(-90_000, 90_000)) for _ in range(500)]
    moments += [base.astimezone(timezone(timedelta(hours=9))),  # same instant, Seoul time
                base.astimezone(timezone(timedelta(hours=-5)))]
    for when in moments:
        utc = when.astimezone(UTC)
        assert keys.hour_bucket(owner, when) == f"p:a:{{a}}:h:{utc:%Y%m%d%H}"
        assert keys.day_bucket(owner, when) == f"p:a:{{a}}:d:{utc:%Y%m%d}"


def test_the_hour_boundary_belongs_to_the_new_hour() -> None:
    keys = Keys("p")
    owner = keys.poll("q")
    top = datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert keys.hour_bucket(owner, top - timedelta(microseconds=1)).endswith(":h:2026123123")
    assert keys.hour_bucket(owner, top).endswith(":h:2027010100")
    assert keys.day_bucket(owner, top).endswith(":d:20270101")
    assert keys.day_bucket(owner, top - timedelta(microseconds=1)).endswith(":d:20261231")
