"""Editors' numbers: one article's from its own buckets, figures across articles from
the aggregates (`store/aggregates.py`).

Nothing here scans keys or replays events. One article's series and figures sum its
hour or day bucket hashes (`keys.hour_bucket` / `keys.day_bucket`). Rankings, section
and site figures read the aggregate sets: all time, a page of a ranking set; a range,
the union of the range's hour and day sets (articles that received votes in it). The
cost grows with the page and with the articles active in the range, not the archive.

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

from engage.formulas import approval, approval_key, trending_score, votes_key, wilson_lower
from engage.store import Store, windows
from engage.timerange import HOUR, Range, floor

TRENDING_BASELINE_HOURS = 24
# Activity refused for an article, as its buckets count it (`refused:<name>`): reaction
# votes over an address budget (the group's or a wider network's) or repeating the
# reader's choice, the same for the article's polls (in the polls' buckets), clicks not
# counted (repeated from one group, over a network's budget, bots, prefetches) and
# impressions over the cap.
REFUSED = (
    "votes_throttled", "votes_duplicate", "poll_votes_throttled", "poll_votes_duplicate",
    "clicks_duplicate", "clicks_throttled", "clicks_bot", "clicks_prefetch",
    "impressions_over_cap",
)


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
        out[article_id] = _figure(store, article_id, meta, counts, clicks, imps,
                                  _trending_inputs(hours, now))
    return out


# -- rankings, sections and site totals from the aggregates ---------------------------
def _sort_keys(sort: str) -> Any:
    """Ascending keys, best first; ties fall back to the id (as the sorted sets order)."""
    if sort == "approval":
        return lambda a: (-approval_key(a["score"], a["total"]), a["id"])
    if sort == "votes":
        return lambda a: (-votes_key(a["score"], a["total"]), a["id"])
    return lambda a: (-a["trending"]["score"], -a["trending"]["last_hour"], a["id"])


SORTS = {name: _sort_keys(name) for name in ("approval", "votes", "trending")}
_IDLE_TREND = (1.0, 0.0)  # the trending key of an article without votes in 26 hours


def _trend_key(recent: float, baseline: float) -> tuple[float, float]:
    return round(trending_score(recent, baseline), 4), round(recent, 2)


def _trend_hours(store: Store, now: datetime) -> tuple[list[str], float]:
    """The 26 hourly "votes cast" sets trending reads, newest first, and how far into
    the current hour `now` is (0-1)."""
    starts = [floor(now, "hour") - HOUR * i for i in range(2 + TRENDING_BASELINE_HOURS)]
    keys = [store.keys.agg(f"h:{store.keys.hour_stamp(start)}:cast") for start in starts]
    return keys, (now - floor(now, "hour")).total_seconds() / 3600.0


def _trend_of(cast: list[float], elapsed: float) -> tuple[float, float]:
    return (cast[0] + cast[1] * (1.0 - elapsed),
            sum(cast[2:2 + TRENDING_BASELINE_HOURS]) / TRENDING_BASELINE_HOURS)


def trend_inputs(store: Store, now: datetime) -> dict[str, tuple[float, float]]:
    """(recent, hourly baseline) of every article with votes cast in the last 26 hours;
    every other article has (0, 0). Reads 26 hourly sets of the active articles."""
    keys, elapsed = _trend_hours(store, now)
    pipe = store.redis.pipeline(transaction=False)
    for key in keys:
        pipe.zrange(key, 0, -1, withscores=True)
    hours: dict[str, list[float]] = {}
    for index, members in enumerate(pipe.execute()):
        for article_id, cast in members:
            hours.setdefault(article_id, [0.0] * len(keys))[index] = cast
    return {article_id: _trend_of(cast, elapsed) for article_id, cast in hours.items()}


def trend_for(store: Store, now: datetime, ids: list[str]) -> dict[str, tuple[float, float]]:
    """`trend_inputs` of the named articles only (a page)."""
    if not ids:
        return {}
    keys, elapsed = _trend_hours(store, now)
    pipe = store.redis.pipeline(transaction=False)
    for key in keys:
        pipe.zmscore(key, ids)
    columns = pipe.execute()
    return {
        article_id: _trend_of([float(column[i] or 0.0) for column in columns], elapsed)
        for i, article_id in enumerate(ids)
    }


def _figure(
    store: Store, article_id: str, meta: dict[str, Any], counts: dict[str, int],
    clicks: int, imps: int, trend: tuple[float, float],
) -> dict[str, Any]:
    choices = list(store.config["CHOICES"])
    total = sum(counts.values())
    positive = counts[choices[0]]
    recent, baseline = trend
    return {
        "id": article_id,
        "title": meta.get("title") or "",
        "section": meta.get("section") or "",
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


def _metas(store: Store, ids: list[str]) -> list[dict[str, Any]]:
    pipe = store.redis.pipeline(transaction=False)
    for article_id in ids:
        pipe.hmget(store.keys.article(article_id), "title", "section", "published_at")
    return [dict(zip(("title", "section", "published_at"), row, strict=True))
            for row in pipe.execute()]


def standing_figures(
    store: Store, ids: list[str], trend: dict[str, tuple[float, float]],
    window: str | None = None,
) -> list[dict[str, Any]]:
    """Figures of the named articles, in that order: current standings, or their sums
    in the rolling window whose key base is `window`."""
    if not ids:
        return []
    keys = store.keys
    choices = list(store.config["CHOICES"])
    pipe = store.redis.pipeline(transaction=False)
    if window is None:
        for field in [f"n:{c}" for c in choices] + ["click", "imp"]:
            pipe.hmget(keys.agg(field), ids)
    else:
        for field in [f"n:{c}" for c in choices] + ["click", "imp"]:
            pipe.zmscore(f"{window}:{field}", ids)
        pipe.hmget(keys.agg("sec"), ids)  # the section a range summed from buckets shows
    replies = pipe.execute()
    filed = replies.pop() if window is not None else [None] * len(ids)
    *per_choice, clicks, imps = replies
    out = []
    for index, (article_id, meta) in enumerate(zip(ids, _metas(store, ids), strict=True)):
        counts = {c: max(0, int(per_choice[i][index] or 0)) for i, c in enumerate(choices)}
        meta["section"] = meta.get("section") or filed[index]
        out.append(_figure(store, article_id, meta, counts, int(clicks[index] or 0),
                           int(imps[index] or 0), trend.get(article_id, (0.0, 0.0))))
    return out


def _trending_ids(
    store: Store, ids_key: str, trend: dict[str, tuple[float, float]],
    offset: int, limit: int,
) -> tuple[int, list[str]]:
    """A page of the articles in `ids_key` (a lexical set: all, a section's, a window's)
    by trending. Only articles with votes in the last 26 hours differ from the idle key;
    the rest tie and follow in id order, read from the lexical set, so the cost grows
    with the active articles and the page, not the archive.
    """
    active = sorted(trend)
    pipe = store.redis.pipeline(transaction=False)
    pipe.zcard(ids_key)
    if active:
        pipe.zmscore(ids_key, active)
    total, *present = pipe.execute()
    if active:
        active = [a for a, score in zip(active, present[0], strict=True) if score is not None]
    keyed = {a: _trend_key(*trend[a]) for a in active}
    order = sorted(active, key=lambda a: (-keyed[a][0], -keyed[a][1], a))
    above = [a for a in order if keyed[a] > _IDLE_TREND]
    below = [a for a in order if keyed[a] < _IDLE_TREND]
    apart = sorted(above + below)
    middle = total - len(apart)
    page: list[str] = above[offset:offset + limit]
    m_start = max(0, offset - len(above))
    m_count = min(limit - len(page), max(0, middle - m_start))
    if m_count > 0:
        pipe = store.redis.pipeline(transaction=False)
        for article_id in apart:
            pipe.zrank(ids_key, article_id)
        ranks = sorted(r for r in pipe.execute() if r is not None)
        first = m_start
        for rank in ranks:  # the ids-set index of the m_start-th idle article
            if rank <= first:
                first += 1
            else:
                break
        excluded = set(apart)
        got = store.redis.zrange(ids_key, first, first + m_count + len(ranks) - 1)
        page += [a for a in got if a not in excluded][:m_count]
    b_start = max(0, offset - len(above) - middle)
    page += below[b_start:b_start + limit - len(page)]
    return total, page


def _segment_keys(store: Store, window: Range, field: str) -> list[str]:
    keys = store.keys
    return [
        keys.agg(f"h:{keys.hour_stamp(start)}:{field}" if kind == "hour"
                 else f"d:{keys.day_stamp(start)}:{field}")
        for kind, start in window.segments()
    ]


RangeCounts = tuple[list[str], list[dict[str, int]], dict[str, Any], dict[str, tuple[int, int]]]


def range_counts(store: Store, window: Range, section: str | None = None) -> RangeCounts:
    """The articles that received votes in the range (net changes per choice, summed
    with ZUNION over the range's hour and day sets, each choice never below zero), their
    counts, the section each is filed under, and the range's (clicks, impressions) of
    every article with link activity, voted or not."""
    choices = list(store.config["CHOICES"])
    pipe = store.redis.pipeline(transaction=False)
    for field in [f"n:{c}" for c in choices] + ["click", "imp"]:
        pipe.zunion(_segment_keys(store, window, field), withscores=True)
    *nets, clicks, imps = [dict(reply) for reply in pipe.execute()]
    links: dict[str, tuple[int, int]] = {}
    for article_id in set(clicks) | set(imps):
        links[article_id] = (int(clicks.get(article_id, 0)), int(imps.get(article_id, 0)))
    voted = sorted(set().union(*nets))
    filed = dict(zip(voted, store.redis.hmget(store.keys.agg("sec"), voted), strict=True)
                 ) if voted else {}
    if section:
        voted = [a for a in voted if filed.get(a) == section]
        kept = set(voted)
        links = {a: v for a, v in links.items() if a in kept}
    counts = [{c: max(0, int(net.get(a, 0))) for c, net in zip(choices, nets, strict=True)}
              for a in voted]
    return voted, counts, filed, links


def range_figures(
    store: Store, window: Range, trend: dict[str, tuple[float, float]],
    section: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    """`range_counts` as article figures (without titles), and the link figures."""
    voted, counts, filed, links = range_counts(store, window, section)
    figures = [
        _figure(store, article_id, {"section": filed.get(article_id)}, got,
                *links.get(article_id, (0, 0)), trend.get(article_id, (0.0, 0.0)))
        for article_id, got in zip(voted, counts, strict=True)
    ]
    return figures, links


def _range_page(
    store: Store, sort: str, section: str | None, window: Range, offset: int, limit: int,
    now: datetime,
) -> tuple[int, list[dict[str, Any]]]:
    """Sorted on the counts alone; figures are built for the page only."""
    voted, counts, filed, links = range_counts(store, window, section)
    first = store.config["CHOICES"][0]
    if sort == "trending":
        trend = trend_inputs(store, now)
        idle = (0.0, 0.0)
        order = sorted(
            (-t[0], -t[1], a)
            for a in voted for t in [_trend_key(*trend.get(a, idle))]
        )
        page_ids = [a for _, _, a in order[offset:offset + limit]]
    else:
        key_of = approval_key if sort == "approval" else votes_key
        keyed = []
        for article_id, got in zip(voted, counts, strict=True):
            total = sum(got.values())
            keyed.append((-key_of(wilson_lower(got[first], total), total), article_id))
        keyed.sort()
        page_ids = [a for _, a in keyed[offset:offset + limit]]
        trend = trend_for(store, now, page_ids)
    by_id = dict(zip(voted, counts, strict=True))
    figures = [
        _figure(store, a, {"section": filed.get(a)}, by_id[a], *links.get(a, (0, 0)),
                trend.get(a, (0.0, 0.0)))
        for a in page_ids
    ]
    return len(voted), _with_meta(store, figures)


def _with_meta(store: Store, figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for fig, meta in zip(figures, _metas(store, [f["id"] for f in figures]), strict=True):
        fig.update(title=meta.get("title") or "", published_at=meta.get("published_at"),
                   section=meta.get("section") or fig["section"])
    return figures


def ranked_page(
    store: Store,
    sort: str = "approval",
    section: str | None = None,
    window: Range | None = None,
    offset: int = 0,
    limit: int = 20,
    now: datetime | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """(how many articles are in scope, the page of them best first by `sort`).

    All time: every article, read a page at a time from the ranking sets. A range:
    every article that received votes in it, read the same way from its rolling window
    when one covers it (the dashboard's presets), else summed from the range's sets.
    """
    now = now or store.now()
    if window is None:
        return _ranked(store, sort, section, None, offset, limit, now)
    rolled = windows.serving(store, window, now)
    if rolled is None:
        return _range_page(store, sort, section, window, offset, limit, now)
    return _ranked(store, sort, section, rolled, offset, limit, now)


def _ranked(
    store: Store, sort: str, section: str | None, rolled: str | None, offset: int,
    limit: int, now: datetime,
) -> tuple[int, list[dict[str, Any]]]:
    """A page of the ranking sets: all time, or the rolling window `rolled`."""
    base = rolled or store.keys.agg_base

    def scoped(name: str) -> str:
        return f"{base}:{name}" + (f":s:{section}" if section else "")

    if sort == "trending":
        trend = trend_inputs(store, now)
        total, ids = _trending_ids(store, scoped("ids"), trend, offset, limit)
    else:
        key = scoped(f"rank:{sort}")
        pipe = store.redis.pipeline(transaction=False)
        pipe.zcard(key)
        pipe.zrange(key, offset, offset + limit - 1)
        total, ids = pipe.execute()
        trend = trend_for(store, now, ids)
    return int(total), standing_figures(store, ids, trend, rolled)


def _row(choices: list[str], counts: dict[str, int], articles_n: int, clicks: int,
         imps: int, last_hour: float) -> dict[str, Any]:
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
    return _row(choices, counts, articles_n, clicks, imps, last_hour)


def section_rows(
    store: Store, window: Range | None = None, now: datetime | None = None,
    trend: dict[str, tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """Each section's figures (the sums of its articles'), most votes first.

    All time: every article, from the running section sums. A range: the articles that
    received votes in it; clicks and impressions count every article's. A range a rolling
    window covers reads that window's section sums.
    """
    now = now or store.now()
    rolled = windows.serving(store, window, now) if window is not None else None
    return _section_rows(store, window, rolled, now, trend)


def _section_rows(
    store: Store, window: Range | None, rolled: str | None, now: datetime,
    trend: dict[str, tuple[float, float]] | None,
) -> list[dict[str, Any]]:
    trend = trend_inputs(store, now) if trend is None else trend
    choices = list(store.config["CHOICES"])
    keys = store.keys
    recent: dict[str, float] = {}
    if trend:
        active = sorted(trend)
        for article_id, sec in zip(active, store.redis.hmget(keys.agg("sec"), active),
                                   strict=True):
            if sec is not None:
                recent[sec] = recent.get(sec, 0.0) + round(trend[article_id][0], 2)
    rows = []
    if window is None or rolled:
        sums: dict[str, dict[str, int]] = {}
        tot_key = f"{rolled}:sectot" if rolled else keys.agg("sectot")
        for field, value in store.redis.hgetall(tot_key).items():
            name, _, what = field.rpartition("\t")
            sums.setdefault(name, {})[what] = int(value)
        for name, got in sums.items():
            if max(got.get("articles", 0), got.get("click", 0), got.get("imp", 0)) <= 0:
                continue  # every article moved elsewhere
            counts = {c: max(0, got.get("c:" + c, 0)) for c in choices}
            rows.append({"section": name, **_row(choices, counts, got.get("articles", 0),
                                                 got.get("click", 0), got.get("imp", 0),
                                                 recent.get(name, 0.0))})
    else:
        figures, links = range_figures(store, window, trend)
        by_section: dict[str, list[dict[str, Any]]] = {}
        for fig in figures:
            by_section.setdefault(fig["section"], []).append(fig)
        link_sums: dict[str, list[int]] = {}
        others = sorted(set(links) - {f["id"] for f in figures})
        filed = dict(zip(others, store.redis.hmget(keys.agg("sec"), others), strict=True)
                     ) if others else {}
        for fig in figures:
            filed[fig["id"]] = fig["section"]
        for article_id, (click, imp) in links.items():
            sums_ = link_sums.setdefault(filed.get(article_id) or "", [0, 0])
            sums_[0] += click
            sums_[1] += imp
        for name in sorted(set(by_section) | {s for s in link_sums if s}):
            members = by_section.get(name, [])
            row = totals(members, choices)
            click, imp = link_sums.get(name, [0, 0])
            row.update(clicks=click, impressions=imp, ctr=click / imp if imp else None,
                       last_hour=round(recent.get(name, 0.0), 2))
            rows.append({"section": name, **row})
    rows.sort(key=lambda r: (-r["total"], r["section"]))
    return rows


def site_totals(rows: list[dict[str, Any]], choices: list[str]) -> dict[str, Any]:
    """The whole site: the sum of its section rows."""
    counts = {c: sum(r["counts"][c] for r in rows) for c in choices}
    return _row(choices, counts, sum(r["articles"] for r in rows),
                sum(r["clicks"] for r in rows), sum(r["impressions"] for r in rows),
                sum(r["last_hour"] for r in rows))


def sections(
    store: Store, window: Range | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each section's summed figures, most votes first."""
    return section_rows(store, window, now)


def overview(
    store: Store, sort: str, window: Range | None, now: datetime | None = None,
    listed: int = 50, ends: int = 5,
) -> dict[str, Any]:
    """What the dashboard's overview shows: totals, the first `listed` by `sort`, the
    best and worst `ends` rated, the `ends` moving now, and the sections."""
    now = now or store.now()
    trend = trend_inputs(store, now)
    choices = list(store.config["CHOICES"])
    rolled = windows.serving(store, window, now) if window is not None else None
    rows = _section_rows(store, window, rolled, now, trend)
    if window is not None and rolled is None:
        figures, _ = range_figures(store, window, trend)
        _with_meta(store, figures)
        figures.sort(key=SORTS["approval"])
        rated = [a for a in figures if a["score"] is not None]
        n_rated = len(rated)
        top_n, bottom_n = min(ends, (n_rated + 1) // 2), min(ends, n_rated // 2)
        top, bottom = rated[:top_n], rated[n_rated - bottom_n:]
        listed_rows = sorted(figures, key=SORTS[sort])[:listed]
        moving = sorted(figures, key=SORTS["trending"])
    else:
        base = rolled or store.keys.agg_base
        key = f"{base}:rank:approval"
        n_rated = int(store.redis.zcount(key, "-inf", 0))
        top_n, bottom_n = min(ends, (n_rated + 1) // 2), min(ends, n_rated // 2)
        top = standing_figures(
            store, store.redis.zrange(key, 0, top_n - 1), trend, rolled) if top_n else []
        bottom = standing_figures(
            store, store.redis.zrange(key, n_rated - bottom_n, n_rated - 1), trend, rolled
        ) if bottom_n else []
        listed_rows = _ranked(store, sort, None, rolled, 0, listed, now)[1]
        hot = sorted((a for a in trend if round(trend[a][0], 2) > 0),
                     key=lambda a: (*(-k for k in _trend_key(*trend[a])), a))
        if rolled and hot:
            present = store.redis.zmscore(f"{rolled}:ids", hot)
            hot = [a for a, score in zip(hot, present, strict=True) if score is not None]
        moving = standing_figures(store, hot[:ends], trend, rolled)
    return {
        "totals": site_totals(rows, choices),
        "ranked": listed_rows,
        "top": top,
        "bottom": list(reversed(bottom)),
        "trending": [a for a in moving if a["trending"]["last_hour"] > 0][:ends],
        "sections": rows,
    }


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

