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

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from engage.formulas import approval, trending_score, wilson_lower
from engage.store import Store
from engage.timerange import HOUR, Range, floor

TRENDING_BASELINE_HOURS = 24
# Activity refused for an article, as its buckets count it (`refused:<name>`): reaction
# votes throttled or repeating the reader's choice, the same for the article's polls
# (in the polls' buckets), clicks not counted and impressions over the cap.
REFUSED = (
    "votes_throttled", "votes_duplicate", "poll_votes_throttled", "poll_votes_duplicate",
    "clicks_duplicate", "clicks_bot", "clicks_prefetch", "impressions_over_cap",
)
# Rankings, section sums and site totals cover this many most recently published articles.
RANKED_ARTICLES = 2000


def iso(value: datetime) -> str:
    """A time as the stats replies show it: UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
            "approval": approval(positive, total),
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
        "approval": approval(positive, total),
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
    """Per bucket: reactions taken/withdrawn per choice, reasons, poll votes, links, and
    the activity refused (REFUSED)."""
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
        poll_fields = _sum(next(replies) for _ in poll_ids)
        refused = {name: int(fields.get("refused:" + name, 0))
                   + poll_fields.get("refused:" + name, 0) for name in REFUSED}
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
                "poll_votes": poll_fields.get("votes", 0),
                "clicks": int(fields.get("click", 0)),
                "impressions": int(fields.get("imp", 0)),
                "refused": refused,
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

