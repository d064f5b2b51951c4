"""Time ranges of the editors' figures: checked against what the buckets keep, and cut
into the hour and day buckets that cover them.

No clock and no storage here: the caller passes `now` and the retention in days, so
every rule can be tried with any date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# The dashboard's range picker: key -> (label, span back from now; None is all time).
PRESETS: dict[str, tuple[str, timedelta | None]] = {
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "all": ("All time", None),
}


class InvalidRange(ValueError):
    """A range the buckets cannot serve; `field` is the query parameter to blame."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Range:
    """A resolved time range and the buckets that cover it.

    `bucket` is "hour" or "day" for a time series, or "mixed" for a sum over a range:
    whole days in the middle from day buckets, the partial days at either end from hour
    buckets, so a week costs about 55 reads instead of 169 and stays exact to the hour.
    """

    since: datetime
    until: datetime
    bucket: str  # "hour" | "day" | "mixed"

    def starts(self) -> list[datetime]:
        return [start for _, start in self.segments()]

    def segments(self) -> list[tuple[str, datetime]]:
        if self.bucket != "mixed":
            return _steps(self.bucket, floor(self.since, self.bucket), self.until)
        first_day = floor(self.since, "day")
        if first_day < floor(self.since, "hour"):
            first_day += DAY
        last_day = floor(self.until, "day")
        if first_day >= last_day:
            return _steps("hour", floor(self.since, "hour"), self.until)
        return (
            _steps("hour", floor(self.since, "hour"), first_day - HOUR)
            + _steps("day", first_day, last_day - DAY)
            + _steps("hour", last_day, self.until)
        )

    @property
    def granularity(self) -> str:
        """What the sums were read from: "hour", "day" or "hour+day"."""
        kinds = {kind for kind, _ in self.segments()}
        return "+".join(k for k in ("hour", "day") if k in kinds) or self.bucket


def _steps(bucket: str, start: datetime, until: datetime) -> list[tuple[str, datetime]]:
    step = HOUR if bucket == "hour" else DAY
    out = []
    while start <= until:
        out.append((bucket, start))
        start += step
    return out


def floor(when: datetime, bucket: str) -> datetime:
    when = when.astimezone(UTC)
    if bucket == "hour":
        return when.replace(minute=0, second=0, microsecond=0)
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def resolve(
    since: datetime | None,
    until: datetime | None,
    *,
    now: datetime,
    hour_days: int,
    day_days: int,
    bucket: str | None = None,
    default_span: timedelta | None = None,
) -> Range:
    """Check a requested range against what the buckets keep; InvalidRange when it
    cannot be served.

    `until` is capped at `now`; without `since` the range reaches back `default_span`
    (48 hours for an hourly series, 30 days otherwise). Without a bucket (a sum, not a
    series), hours and days are mixed when the range starts within the hourly
    retention, days alone otherwise.
    """
    until = min(until or now, now)
    if since is None:
        span = default_span or (timedelta(hours=48) if bucket == "hour" else timedelta(days=30))
        since = until - span
    if since > until:
        raise InvalidRange("since", "`since` must not be after `until`.")
    if bucket is None:
        bucket = "mixed" if since >= now - timedelta(days=hour_days) else "day"
    if bucket in ("hour", "mixed") and since < floor(now, "hour") - timedelta(days=hour_days):
        raise InvalidRange(
            "since", f"Hourly figures are kept {hour_days} days; ask for bucket=day."
        )
    if bucket == "day" and since < floor(now, "day") - timedelta(days=day_days):
        raise InvalidRange("since", f"Daily figures are kept {day_days} days.")
    return Range(since.astimezone(UTC), until.astimezone(UTC), bucket)
