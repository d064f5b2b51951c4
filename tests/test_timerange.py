"""Time ranges of the editors' figures (engage/timerange.py): what a range may ask for,
and the hour and day buckets read for it. Plain functions with `now` passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.timerange import DAY, HOUR, PRESETS, InvalidRange, Range, floor, resolve

NOW = datetime(2026, 3, 10, 14, 25, 30, tzinfo=UTC)
RETENTION = {"hour_days": 14, "day_days": 400}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_floor_is_taken_in_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    when = datetime(2026, 3, 11, 1, 30, tzinfo=seoul)  # 16:30 UTC the day before
    assert floor(when, "hour") == at("2026-03-10T16:00")
    assert floor(when, "day") == at("2026-03-10T00:00")


# -- resolve ----------------------------------------------------------------------------
def test_default_spans() -> None:
    hourly = resolve(None, None, now=NOW, bucket="hour", **RETENTION)
    assert (hourly.since, hourly.until, hourly.bucket) == (NOW - timedelta(hours=48), NOW, "hour")
    daily = resolve(None, None, now=NOW, bucket="day", **RETENTION)
    assert daily.since == NOW - timedelta(days=30)
    summed = resolve(None, None, now=NOW, default_span=timedelta(days=400), **RETENTION)
    assert (summed.since, summed.bucket) == (NOW - timedelta(days=400), "day")


def test_until_is_capped_at_now_and_since_follows_it() -> None:
    window = resolve(None, NOW + timedelta(days=3), now=NOW, bucket="hour", **RETENTION)
    assert window.until == NOW and window.since == NOW - timedelta(hours=48)
    window = resolve(None, NOW - DAY, now=NOW, bucket="hour", **RETENTION)
    assert window.until == NOW - DAY and window.since == NOW - DAY - timedelta(hours=48)


def test_since_after_until_is_refused() -> None:
    with pytest.raises(InvalidRange) as refused:
        resolve(NOW - HOUR, NOW - 2 * HOUR, now=NOW, **RETENTION)
    assert refused.value.field == "since"
    assert refused.value.message == "`since` must not be after `until`."
    # A single instant is a range.
    assert resolve(NOW - HOUR, NOW - HOUR, now=NOW, **RETENTION).since == NOW - HOUR


def test_a_sum_mixes_hours_and_days_while_hours_are_kept() -> None:
    recent = resolve(NOW - timedelta(days=14), None, now=NOW, **RETENTION)
    assert recent.bucket == "mixed"
    older = resolve(NOW - timedelta(days=14, seconds=1), None, now=NOW, **RETENTION)
    assert older.bucket == "day"


def test_hourly_retention_is_counted_from_the_current_hour() -> None:
    oldest = floor(NOW, "hour") - timedelta(days=14)
    assert resolve(oldest, None, now=NOW, bucket="hour", **RETENTION).since == oldest
    with pytest.raises(InvalidRange) as refused:
        resolve(oldest - timedelta(microseconds=1), None, now=NOW, bucket="hour", **RETENTION)
    assert refused.value.field == "since"
    assert refused.value.message == "Hourly figures are kept 14 days; ask for bucket=day."


def test_daily_retention_is_counted_from_the_current_day() -> None:
    oldest = floor(NOW, "day") - timedelta(days=400)
    assert resolve(oldest, None, now=NOW, bucket="day", **RETENTION).since == oldest
    with pytest.raises(InvalidRange, match="Daily figures are kept 400 days."):
        resolve(oldest - timedelta(seconds=1), None, now=NOW, bucket="day", **RETENTION)


def test_resolved_times_are_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    window = resolve(NOW.astimezone(seoul) - DAY, None, now=NOW, **RETENTION)
    assert window.since.tzinfo == UTC and window.since == NOW - DAY


def test_every_dashboard_preset_can_be_served_by_default() -> None:
    for key, (label, span) in PRESETS.items():
        assert label
        if span is not None:
            window = resolve(NOW - span, None, now=NOW, **RETENTION)
            assert window.until == NOW, key


# -- the buckets a range reads ----------------------------------------------------------
def test_a_series_reads_one_bucket_per_step() -> None:
    window = Range(at("2026-03-10T09:40"), at("2026-03-10T12:05"), "hour")
    assert window.segments() == [("hour", at(f"2026-03-10T{h:02}:00")) for h in (9, 10, 11, 12)]
    assert window.granularity == "hour"
    days = Range(at("2026-03-08T23:00"), at("2026-03-10T01:00"), "day")
    assert days.starts() == [at("2026-03-08T00:00"), at("2026-03-09T00:00"),
                             at("2026-03-10T00:00")]


def test_a_week_reads_days_in_the_middle() -> None:
    week = Range(NOW - timedelta(days=7), NOW, "mixed")
    segments = week.segments()
    # 10 hours on the first day (14:00 to 23:00), 6 whole days, 15 hours today.
    assert len(segments) == 10 + 6 + 15
    assert week.granularity == "hour+day"
    within_a_day = Range(NOW - timedelta(hours=5), NOW, "mixed")
    assert within_a_day.granularity == "hour" and len(within_a_day.segments()) == 6


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 2, 1),
                 timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)),
)
def test_a_mixed_range_covers_each_hour_once(since: datetime, span: timedelta) -> None:
    window = Range(since, since + span, "mixed")
    covered: list[datetime] = []
    for kind, start in window.segments():
        hours = 24 if kind == "day" else 1
        covered.extend(start + HOUR * n for n in range(hours))
    first, last = floor(window.since, "hour"), floor(window.until, "hour")
    expected = [first + HOUR * n for n in range(int((last - first) / HOUR) + 1)]
    assert covered == expected
