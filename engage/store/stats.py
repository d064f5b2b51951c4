"""Editors' numbers, read from the time buckets the write scripts keep up.

Nothing here scans keys or replays events: every figure is a sum of hour or day
bucket hashes (`keys.hour_bucket` / `keys.day_bucket`) or of the live counters, read
in one pipeline per request. Sections are sums of their articles' figures.

Formulas (documented in the README too):

- approval = share of the first configured choice ("yes") among all reactions;
- score = Wilson lower bound (95 %) of that share, so 5 of 5 ranks below 480 of 500;
- trending = (recent + 1) / (baseline + 1), where `recent` is an estimate of the
  votes cast in the last 60 minutes (the current UTC hour plus the previous hour's
  bucket weighted by the part of it still inside the window) and `baseline` is the
  article's average votes per hour over the 24 whole hours before the previous one.
  "Votes cast" counts `+<choice>` bucket fields: new votes and moved votes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engage.store import Store
from engage.store.exceptions import InvalidRange

Z95 = 1.959963984540054
TRENDING_BASELINE_HOURS = 24
# Rankings, section sums and site totals cover this many most recently published articles.
RANKED_ARTICLES = 2000
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def wilson_lower(positive: int, total: int, z: float = Z95) -> float | None:
    """Lower bound of the Wilson score interval of positive/total; None without votes."""
    if total <= 0:
        return None
    p = positive / total
    z2 = z * z
    centre = p + z2 / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, (centre - margin) / (1 + z2 / total))


def iso(value: datetime) -> str:
    """A time as the stats replies show it: UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def trending_score(recent: float, baseline: float) -> float:
    return (recent + 1.0) / (baseline + 1.0)


# -- ranges ----------------------------------------------------------------------------
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


def _invalid(field: str, message: str) -> InvalidRange:
    return InvalidRange(field, message)


def resolve_range(
    store: Store,
    since: datetime | None,
    until: datetime | None,
    bucket: str | None = None,
    now: datetime | None = None,
    default_span: timedelta | None = None,
) -> Range:
    """Check a requested range against what the buckets keep; 422 when it cannot be served.

    Without a bucket (a sum, not a series), hours and days are mixed when the range
    starts within the hourly retention, days alone otherwise.
    """
    now = now or store.now()
    hour_days = int(store.config["HOUR_BUCKET_DAYS"])
    day_days = int(store.config["DAY_BUCKET_DAYS"])
    until = min(until or now, now)
    if since is None:
        span = default_span or (timedelta(hours=48) if bucket == "hour" else timedelta(days=30))
        since = until - span
    if since > until:
        raise _invalid("since", "`since` must not be after `until`.")
    if bucket is None:
        bucket = "mixed" if since >= now - timedelta(days=hour_days) else "day"
    if bucket in ("hour", "mixed") and since < floor(now, "hour") - timedelta(days=hour_days):
        raise _invalid(
            "since", f"Hourly figures are kept {hour_days} days; ask for bucket=day."
        )
    if bucket == "day" and since < floor(now, "day") - timedelta(days=day_days):
        raise _invalid("since", f"Daily figures are kept {day_days} days.")
    return Range(since.astimezone(UTC), until.astimezone(UTC), bucket)


# -- bucket reads ----------------------------------------------------------------------
def _bucket_key(store: Store, owner_key: str, bucket: str, start: datetime) -> str:
    if bucket == "hour":
        return store.keys.hour_bucket(owner_key, start)
    return store.keys.day_bucket(owner_key, start)


def _sum(hashes: Iterable[dict[str, str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for raw in hashes:
        for field, value in raw.items():
            total[field] += int(value)
    return total


def _votes_cast(fields: dict[str, str] | Counter[str]) -> int:
    return sum(int(v) for k, v in fields.items() if k.startswith("+"))


def _net_counts(store: Store, fields: Counter[str]) -> dict[str, int]:
    """Net reactions gained in a range per choice; a range can lose votes, shown as 0."""
    return {
        choice: max(0, fields.get("+" + choice, 0) - fields.get("-" + choice, 0))
        for choice in store.config["CHOICES"]
    }


def _trending_inputs(hours: list[dict[str, str]], now: datetime) -> tuple[float, float]:
    """`hours` holds the current hour first, then the previous 25 hours, newest first."""
    elapsed = (now - floor(now, "hour")).total_seconds() / 3600.0
    recent = _votes_cast(hours[0]) + _votes_cast(hours[1]) * (1.0 - elapsed)
    base = sum(_votes_cast(h) for h in hours[2 : 2 + TRENDING_BASELINE_HOURS])
    return recent, base / TRENDING_BASELINE_HOURS


def article_figures(
    store: Store,
    article_ids: list[str],
    window: Range | None = None,
    now: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Counts, approval, score, trending and link figures of many articles, one pipeline.

    Without a window, counts are the current standings and link figures are all-time;
    with one, both are sums of the window's buckets.
    """
    now = now or store.now()
    keys = store.keys
    trend_starts = [floor(now, "hour") - HOUR * i for i in range(2 + TRENDING_BASELINE_HOURS)]
    window_segments = window.segments() if window else []
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        owner = keys.article(article_id)
        pipe.hgetall(owner)
        if window is None:
            pipe.hgetall(keys.article_counts(article_id))
            pipe.hgetall(keys.article_linkstats(article_id))
        else:
            for kind, start in window_segments:
                pipe.hgetall(_bucket_key(store, owner, kind, start))
        for start in trend_starts:
            pipe.hgetall(keys.hour_bucket(owner, start))
    replies = iter(pipe.execute())
    choices = list(store.config["CHOICES"])
    out: dict[str, dict[str, Any]] = {}
    for article_id in article_ids:
        meta = next(replies)
        if window is None:
            raw_counts = next(replies)
            linkstats = next(replies)
            counts = {c: max(0, int(raw_counts.get(c, 0))) for c in choices}
            clicks = sum(int(v) for k, v in linkstats.items() if k.endswith(":clicks"))
            imps = sum(int(v) for k, v in linkstats.items() if k.endswith(":imps"))
        else:
            fields = _sum(next(replies) for _ in window_segments)
            counts = _net_counts(store, fields)
            clicks, imps = fields.get("click", 0), fields.get("imp", 0)
        hours = [next(replies) for _ in trend_starts]
        if not meta:
            continue
        recent, baseline = _trending_inputs(hours, now)
        total = sum(counts.values())
        positive = counts[choices[0]]
        out[article_id] = {
            "id": article_id,
            "title": meta.get("title", ""),
            "section": meta.get("section", ""),
            "published_at": meta.get("published_at"),
            "counts": counts,
            "total": total,
            "approval": positive / total if total else None,
            "score": wilson_lower(positive, total),
            "trending": {
                "score": round(trending_score(recent, baseline), 4),
                "last_hour": round(recent, 2),
                "hourly_average": round(baseline, 3),
            },
            "clicks": clicks,
            "impressions": imps,
            "ctr": clicks / imps if imps else None,
        }
    return out


SORTS = {
    # Unrated articles sort last; ties fall back to more votes, then the id.
    "approval": lambda a: (a["score"] if a["score"] is not None else -1.0, a["total"]),
    "votes": lambda a: (a["total"], a["score"] or 0.0),
    "trending": lambda a: (a["trending"]["score"], a["trending"]["last_hour"]),
}


def ranked(
    store: Store,
    sort: str = "approval",
    section: str | None = None,
    window: Range | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The articles in scope, best first by `sort`.

    The scope is the RANKED_ARTICLES most recently published articles (of the section):
    a request reads about 30 small hashes per article, so the archive is left out.
    """
    key = store.keys.section(section) if section else store.keys.articles
    ids = list(store.redis.zrevrange(key, 0, RANKED_ARTICLES - 1))
    figures = list(article_figures(store, ids, window, now).values())
    figures.sort(key=lambda a: a["id"])
    figures.sort(key=SORTS[sort], reverse=True)
    return figures


def totals(figures: Iterable[dict[str, Any]], choices: list[str]) -> dict[str, Any]:
    """Sum of article figures: what a section or the whole site shows."""
    counts = {c: 0 for c in choices}
    clicks = imps = articles_n = 0
    last_hour = 0.0
    for fig in figures:
        articles_n += 1
        for choice, n in fig["counts"].items():
            counts[choice] = counts.get(choice, 0) + n
        clicks += fig["clicks"]
        imps += fig["impressions"]
        last_hour += fig["trending"]["last_hour"]
    total = sum(counts.values())
    positive = counts[choices[0]]
    return {
        "articles": articles_n,
        "counts": counts,
        "total": total,
        "approval": positive / total if total else None,
        "score": wilson_lower(positive, total),
        "clicks": clicks,
        "impressions": imps,
        "ctr": clicks / imps if imps else None,
        "last_hour": round(last_hour, 2),
    }


def sections(
    store: Store, window: Range | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each section's summed figures, most votes first."""
    figures = ranked(store, "votes", None, window, now)
    return group_sections(figures, list(store.config["CHOICES"]))


def group_sections(figures: Iterable[dict[str, Any]], choices: list[str]) -> list[dict[str, Any]]:
    """Section rows from article figures already read (the overview reads them once)."""
    by_section: dict[str, list[dict[str, Any]]] = {}
    for fig in figures:
        by_section.setdefault(fig["section"], []).append(fig)
    rows = [
        {"section": name, **totals(members, choices)}
        for name, members in by_section.items()
    ]
    rows.sort(key=lambda r: (-r["total"], r["section"]))
    return rows


# -- one article's time series ---------------------------------------------------------
def article_series(store: Store, article_id: str, window: Range) -> dict[str, Any] | None:
    """Per bucket: reactions taken/withdrawn per choice, reasons, poll votes, links."""
    keys = store.keys
    owner = keys.article(article_id)
    pipe = store.redis.pipeline(transaction=False)
    pipe.exists(owner)
    pipe.zrange(keys.article_polls(article_id), 0, -1)
    exists, poll_ids = pipe.execute()
    if not exists:
        return None
    starts = window.starts()
    pipe = store.redis.pipeline(transaction=False)
    for start in starts:
        pipe.hgetall(_bucket_key(store, owner, window.bucket, start))
        for poll_id in poll_ids:
            pipe.hgetall(_bucket_key(store, keys.poll(poll_id), window.bucket, start))
    replies = iter(pipe.execute())
    choices = list(store.config["CHOICES"])
    points = []
    for start in starts:
        fields = next(replies)
        poll_votes = sum(int(next(replies).get("votes", 0)) for _ in poll_ids)
        points.append(
            {
                "start": iso(start),
                "added": {c: int(fields.get("+" + c, 0)) for c in choices},
                "removed": {c: int(fields.get("-" + c, 0)) for c in choices},
                "reasons": {
                    k.split(":", 1)[1]: int(v)
                    for k, v in fields.items()
                    if k.startswith("reason:")
                },
                "poll_votes": poll_votes,
                "clicks": int(fields.get("click", 0)),
                "impressions": int(fields.get("imp", 0)),
            }
        )
    return {
        "article": article_id,
        "bucket": window.bucket,
        "since": iso(window.since),
        "until": iso(window.until),
        "choices": choices,
        "points": points,
    }

