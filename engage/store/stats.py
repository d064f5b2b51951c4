"""Editors' numbers: article figures, rankings, sections and site totals from the
aggregates (`store/aggregates.py`), one article's time series from its own buckets.

Nothing here scans keys or replays events. Each question has one function (`figures`,
`ranked_page`, `sections`, `overview`, `article_series`), asked of one site (its
aggregates' key base, `keys.agg_site`: the default site's is the base itself), and each
reads its scope (`_scope`) one of two ways:

- sets: the running sums, a page of a ranking set and the section sums kept under one
  key base, the all-time one (`keys.agg_base`) or a rolling window's
  (`store/windows.py`: the dashboard's preset ranges, kept because they measured 2-5x
  faster than summing a week);
- sums (`InRange`): any other range reads, once, the ZUNION of its hour and day sets
  (the articles that received votes in it, and every article's link figures) and sorts
  them here, so its cost grows with the articles active in the range, not the archive.

Formulas (formulas.py, documented in docs/dashboard.md):

- approval = share of the approving choice among all reactions: the first choice of the
  article's reaction set (its own, else its site's; "yes" by default); a section's and
  a site's, the first of the site's set among the reactions of the site's choices;
- score = Wilson lower bound (95 %) of that share, so 5 of 5 ranks below 480 of 500;
- least approved = lowest Wilson upper bound first (confidently bad);
- trending = (recent + 1) / (baseline + 1), where `recent` is an estimate of the
  votes cast in the last 60 minutes (the current UTC hour plus the previous hour's
  votes weighted by the part of it still inside the window) and `baseline` is the
  article's average votes per hour over the 24 whole hours before the previous one.
  "Votes cast" are new votes and moved votes (the aggregates' hourly `cast` sets).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from engage.formulas import approval, rank_keys, trending_score, wilson_lower
from engage.store import Store, articles, polls, sites, windows
from engage.store.reactions import CHANNELS
from engage.timerange import HOUR, Range, floor

TRENDING_BASELINE_HOURS = 24
SORTS = ("approval", "votes", "trending")
# The ranking sets (`rank:<name>`), in the order of formulas.rank_keys; "worst" lists the
# least approved, by the upper bound.
RANKS = ("approval", "votes", "worst")
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
Trend = dict[str, tuple[float, float]]


def iso(value: datetime) -> str:
    """A time as the stats replies show it: UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- trending ----------------------------------------------------------------------------
def site_base(store: Store, site: str | None) -> str:
    """The key base of a site's aggregates (None: the default site)."""
    return store.keys.agg_site(site, store.config["DEFAULT_SITE"])


def _cast_keys(store: Store, now: datetime, base: str) -> list[str]:
    """The 26 hourly "votes cast" sets trending reads, newest first."""
    hour = floor(now, "hour")
    return [f"{base}:h:{store.keys.hour_stamp(hour - HOUR * i)}:cast"
            for i in range(2 + TRENDING_BASELINE_HOURS)]


def _trend(now: datetime, hours: dict[str, list[float]]) -> Trend:
    """(recent, hourly baseline) of each article from its votes cast per hour."""
    elapsed = (now - floor(now, "hour")).total_seconds() / 3600.0
    return {article_id: (cast[0] + cast[1] * (1.0 - elapsed),
                         sum(cast[2:]) / TRENDING_BASELINE_HOURS)
            for article_id, cast in hours.items()}


def trend_inputs(store: Store, now: datetime, site: str | None = None) -> Trend:
    """`_trend` of every article of the site with votes cast in the last 26 hours; any
    other article has (0, 0)."""
    keys = _cast_keys(store, now, site_base(store, site))
    pipe = store.redis.pipeline(transaction=False)
    for key in keys:
        pipe.zrange(key, 0, -1, withscores=True)
    hours: dict[str, list[float]] = {}
    for index, members in enumerate(pipe.execute()):
        for article_id, cast in members:
            hours.setdefault(article_id, [0.0] * len(keys))[index] = cast
    return _trend(now, hours)


def _by_trend(trend: Trend, article_id: str) -> tuple[float, float, str]:
    """Trending's sort key, best first: the score, then the last hour's votes (both as
    shown), then the id."""
    recent, baseline = trend.get(article_id, (0.0, 0.0))
    return -round(trending_score(recent, baseline), 4), -round(recent, 2), article_id


_IDLE = (-1.0, 0.0)  # `_by_trend`, less the id, of an article without votes in 26 hours


# -- scopes: the sets under a key base, or a range's sums --------------------------------------
@dataclasses.dataclass(frozen=True)
class InRange:
    """A range, read once: the net counts of the articles that received votes in it,
    the (clicks, impressions) of every article with link activity in it, and the
    section each of them is filed under."""

    counts: dict[str, dict[str, int]]
    links: dict[str, tuple[int, int]]
    filed: dict[str, str | None]
    approving: dict[str, str]  # each counted article's approving choice
    # Sorted once per (sort, section) however many pages the caller takes.
    orders: dict[tuple[str, str | None], list[str]] = dataclasses.field(default_factory=dict)


Scope = str | InRange  # a key base (all time, a rolling window) or a range's sums


def in_range(store: Store, window: Range, site: str | None = None,
             every_site: bool = False) -> InRange:
    """ZUNION of the range's hour and day sets of the site (or, `every_site`, of each
    site, merged); each choice never below zero, each article counted by its set."""
    names = windows.segment_names(store, window)
    found = InRange({}, {}, {}, {})
    for one in (list(sites.listing(store)) if every_site else [site]):
        base = site_base(store, one)
        pipe = store.redis.pipeline(transaction=False)
        pipe.hgetall(f"{base}:own")
        own = {a: line.split(",") for a, line in pipe.execute()[0].items()}
        site_set = list(sites.site_or_default(store, one)["reactions"]["choices"])
        choices = list(dict.fromkeys(site_set + [c for cs in own.values() for c in cs]))
        pipe = store.redis.pipeline(transaction=False)
        for field in [f"n:{c}" for c in choices] + ["click", "imp"]:
            pipe.zunion([f"{base}:{name}:{field}" for name in names], withscores=True)
        *got, clicks, imps = [dict(reply) for reply in pipe.execute()]
        nets = dict(zip(choices, got, strict=True))
        for a in set().union(*got):
            counted = own.get(a, site_set)
            found.counts[a] = {c: max(0, int(nets[c].get(a, 0))) for c in counted}
            found.approving[a] = counted[0]
        found.links.update({a: (int(clicks.get(a, 0)), int(imps.get(a, 0)))
                            for a in set(clicks) | set(imps)})
        named = [a for a in set(found.counts) | set(found.links) if a not in found.filed]
        if named:
            found.filed.update(zip(named, store.redis.hmget(f"{base}:sec", named), strict=True))
    return found


def _scope(store: Store, window: Range | None, now: datetime, site: str | None = None
           ) -> Scope:
    """Where the site's figures of `window` are read: all time's key base, the rolling
    window that covers it exactly, else its sums."""
    base = site_base(store, site)
    if window is None:
        return base
    return windows.serving(store, window, now, base) or in_range(store, window, site)


def _is_window(scope: str) -> bool:
    """A rolling window's key base (`<site base>:w:<name>`), not a site's all time."""
    return scope.rsplit(":", 2)[-2] == "w"


# -- article figures -------------------------------------------------------------------------
def figures(
    store: Store, ids: list[str], now: datetime | None = None, trend: Trend | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Figures of the named articles, in that order, in `scope` (default all time: their
    standings), each counted by its own reaction set, all time under its own site's key
    base. `trend` holds every active article's, or is read for these. Each row also
    says who registered the article (`source`) and when it was last verified."""
    if not ids:
        return []
    keys = store.keys
    now = now or store.now()
    pipe = store.redis.pipeline(transaction=False)
    for article_id in ids:
        pipe.hmget(keys.article(article_id), "title", "section", "published_at", "site",
                   "reactions", "source", "verified_at")
    metas = pipe.execute()
    sets = {a: sites.reaction_set(store, meta[3], meta[4])["choices"]
            for a, meta in zip(ids, metas, strict=True)}
    bases = {a: site_base(store, meta[3]) for a, meta in zip(ids, metas, strict=True)}
    all_time = scope is None or (isinstance(scope, str) and not _is_window(scope))
    by_site: dict[str, list[str]] = {}
    for a in ids:
        by_site.setdefault(bases[a], []).append(a)
    # (key, hash or zset, field, articles): all time each article's site's sums
    # (hashes), a window's the window's (sorted sets) and the section it filed under.
    plan: list[tuple[str, str, str, list[str]]] = []
    for base, members in by_site.items():
        choices = list(dict.fromkeys(c for a in members for c in sets[a]))
        if all_time:
            plan += [(f"{base}:{f}", "h", f, members)
                     for f in [f"n:{c}" for c in choices] + ["click", "imp"]]
        elif isinstance(scope, str):
            plan += [(f"{scope}:{f}", "z", f, members)
                     for f in [f"n:{c}" for c in choices] + ["click", "imp"]]
            plan.append((f"{base}:sec", "h", "sec", members))
        if trend is None:
            plan += [(key, "z", "cast", members) for key in _cast_keys(store, now, base)]
    pipe = store.redis.pipeline(transaction=False)
    for key, kind, _, members in plan:
        if kind == "h":
            pipe.hmget(key, members)
        else:
            pipe.zmscore(key, members)
    read: dict[str, dict[str, Any]] = {a: {"cast": []} for a in ids}
    for (_, _, field, members), reply in zip(plan, pipe.execute(), strict=True):
        for a, value in zip(members, reply, strict=True):
            if field == "cast":
                read[a]["cast"].append(float(value or 0.0))
            else:
                read[a][field] = value
    if trend is None:
        trend = _trend(now, {a: read[a]["cast"] for a in ids})
    out = []
    for article_id, (title, section, published, _, _, source, verified) in zip(
            ids, metas, strict=True):
        choices, got = sets[article_id], read[article_id]
        if isinstance(scope, InRange):
            counts = {c: scope.counts.get(article_id, {}).get(c, 0) for c in choices}
            clicks_n, imps_n = scope.links.get(article_id, (0, 0))
            filed = scope.filed.get(article_id)
        else:
            counts = {c: max(0, int(got.get(f"n:{c}") or 0)) for c in choices}
            clicks_n, imps_n = int(got.get("click") or 0), int(got.get("imp") or 0)
            filed = got.get("sec")
        total = sum(counts.values())
        recent, baseline = trend.get(article_id, (0.0, 0.0))
        out.append({
            "id": article_id,
            "title": title or "",
            "section": section or filed or "",
            "published_at": published,
            "counts": counts,
            "total": total,
            "approval": approval(counts[choices[0]], total),
            "score": wilson_lower(counts[choices[0]], total),
            "trending": {
                "score": round(trending_score(recent, baseline), 4),
                "last_hour": round(recent, 2),
                "hourly_average": round(baseline, 3),
            },
            "clicks": clicks_n,
            "impressions": imps_n,
            "ctr": clicks_n / imps_n if imps_n else None,
            # Who registered it (articles stored before sources were an editor's).
            "source": source or "editor",
            "verified_at": verified,
        })
    return out


# -- rankings ------------------------------------------------------------------------------
def _trending_ids(
    store: Store, ids_key: str, trend: Trend, offset: int, limit: int,
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
    keyed = {a: _by_trend(trend, a) for a in active}
    order = sorted(active, key=keyed.__getitem__)
    above = [a for a in order if keyed[a][:2] < _IDLE]
    below = [a for a in order if keyed[a][:2] > _IDLE]
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
    return int(total), page


def _order(
    store: Store, sort: str, section: str | None, scope: Scope, trend: Trend | None,
    offset: int, limit: int,
) -> tuple[int, list[str]]:
    """(how many articles are in scope, the ids of a page of them best first by `sort`),
    ties to the id. The sets hold the ranking (trending needs `trend`, every active
    article's); a range's sums are sorted here by the same keys."""
    if isinstance(scope, InRange):
        if (sort, section) not in scope.orders:
            ids = [a for a in scope.counts if not section or scope.filed.get(a) == section]
            if sort == "trending":
                assert trend is not None
                ids.sort(key=functools.partial(_by_trend, trend))
            else:
                pick = RANKS.index(sort)

                def key(a: str) -> tuple[int, str]:
                    counts = scope.counts[a]
                    return -rank_keys(counts[scope.approving[a]], sum(counts.values()))[pick], a

                ids.sort(key=key)
            scope.orders[(sort, section)] = ids
        ids = scope.orders[(sort, section)]
        return len(ids), ids[offset:offset + limit]
    suffix = f":s:{section}" if section else ""
    if sort == "trending":
        assert trend is not None
        return _trending_ids(store, f"{scope}:ids{suffix}", trend, offset, limit)
    pipe = store.redis.pipeline(transaction=False)
    pipe.zcard(f"{scope}:rank:{sort}{suffix}")
    pipe.zrange(f"{scope}:rank:{sort}{suffix}", offset, offset + limit - 1)
    total, ids = pipe.execute()
    return int(total), ids


def ranked_page(
    store: Store,
    sort: str = "approval",
    section: str | None = None,
    window: Range | None = None,
    offset: int = 0,
    limit: int = 20,
    now: datetime | None = None,
    trend: Trend | None = None,
    search: dict[str, Any] | None = None,
    site: str | None = None,
    site_names: list[str] | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """(how many articles of the site (None: the default) are in scope, the page of
    them best first by `sort`); `trend` when the caller has read every active article's
    of the site. With `search` (articles.find's q, tag, source, since, until: the
    publication time) the articles found, newest first, of `site_names` only when named
    (their count too), else of every site.

    All time: every article. A range: every article that received votes in it.
    """
    now = now or store.now()
    scope = _scope(store, window, now, site)
    if search:
        total, ids = articles.find(store, search.get("q") or "", section, search.get("tag"),
                                   search.get("since"), search.get("until"), offset, limit,
                                   site_names, search.get("source"))
        return total, figures(store, ids, now, trend, scope)
    if sort == "trending" and trend is None:
        trend = trend_inputs(store, now, site)
    total, ids = _order(store, sort, section, scope, trend, offset, limit)
    return total, figures(store, ids, now, trend, scope)


# -- sections and the whole site -------------------------------------------------------------
def _row(choices: list[str], got: dict[str, int], last_hour: float) -> dict[str, Any]:
    """A section's or the site's figures from its sums (`articles`, `c:<choice>`,
    `click`, `imp`)."""
    counts = {c: max(0, got.get("c:" + c, 0)) for c in choices}
    total, clicks, imps = sum(counts.values()), got.get("click", 0), got.get("imp", 0)
    return {
        "articles": got.get("articles", 0),
        "counts": counts,
        "total": total,
        "approval": approval(counts[choices[0]], total),
        "score": wilson_lower(counts[choices[0]], total),
        "clicks": clicks,
        "impressions": imps,
        "ctr": clicks / imps if imps else None,
        "last_hour": round(last_hour, 2),
    }


def site_choices(store: Store, site: str | None) -> list[str]:
    """The choices a site's section and site figures count: its set's, in display order
    (the first approving)."""
    return list(sites.site_or_default(store, site)["reactions"]["choices"])


def sections(
    store: Store, window: Range | None = None, now: datetime | None = None,
    trend: Trend | None = None, scope: Scope | None = None, site: str | None = None,
) -> list[dict[str, Any]]:
    """Each section of the site's (None: the default) figures (the sums of its
    articles'), most votes first; `trend` and `scope` when the caller has read them.

    All time: every article. A range: the articles that received votes in it; clicks
    and impressions count every article's. The site's choices are counted: an article
    with its own set adds the reactions of the choices it shares with the site's.
    """
    now = now or store.now()
    trend = trend_inputs(store, now, site) if trend is None else trend
    scope = _scope(store, window, now, site) if scope is None else scope
    choices = site_choices(store, site)
    sums: dict[str, dict[str, int]] = {}
    if isinstance(scope, str):
        for field, value in store.redis.hgetall(f"{scope}:sectot").items():
            name, _, what = field.rpartition("\t")
            sums.setdefault(name, {})[what] = int(value)
    else:
        for article_id, counts in scope.counts.items():
            got = sums.setdefault(scope.filed.get(article_id) or "", {})
            got["articles"] = got.get("articles", 0) + 1
            for choice, n in counts.items():
                got["c:" + choice] = got.get("c:" + choice, 0) + n
        for article_id, (click, imp) in scope.links.items():
            got = sums.setdefault(scope.filed.get(article_id) or "", {})
            got["click"], got["imp"] = got.get("click", 0) + click, got.get("imp", 0) + imp
    recent: dict[str, float] = {}
    if trend:
        active = sorted(trend)
        for article_id, sec in zip(active, store.redis.hmget(site_base(store, site) + ":sec",
                                                              active), strict=True):
            if sec is not None:
                recent[sec] = recent.get(sec, 0.0) + round(trend[article_id][0], 2)
    rows = [{"section": name, **_row(choices, got, recent.get(name, 0.0))}
            for name, got in sums.items()
            # every article moved elsewhere, or activity of articles never filed
            if name and max(got.get("articles", 0), got.get("click", 0), got.get("imp", 0)) > 0]
    rows.sort(key=lambda r: (-r["total"], r["section"]))
    return rows


def site_totals(rows: Iterable[dict[str, Any]], choices: list[str]) -> dict[str, Any]:
    """The whole site: the sum of its section rows."""
    got: Counter[str] = Counter()
    last_hour = 0.0
    for row in rows:
        got.update({"articles": row["articles"], "click": row["clicks"],
                    "imp": row["impressions"]})
        got.update({"c:" + c: n for c, n in row["counts"].items()})
        last_hour += row["last_hour"]
    return _row(choices, dict(got), last_hour)


def overview(
    store: Store, window: Range | None, now: datetime | None = None, ends: int = 5,
    site: str | None = None,
) -> dict[str, Any]:
    """What the dashboard's overview of a site (None: the default) shows besides its
    article table (`ranked_page`): totals, the best and worst `ends` rated, the `ends`
    moving now, and the sections."""
    now = now or store.now()
    trend = trend_inputs(store, now, site)
    scope = _scope(store, window, now, site)
    rows = sections(store, window, now, trend, scope, site)
    hot = sorted((a for a in trend if round(trend[a][0], 2) > 0),
                 key=functools.partial(_by_trend, trend))
    if isinstance(scope, InRange):
        n_rated = sum(1 for counts in scope.counts.values() if sum(counts.values()))
        hot = [a for a in hot if a in scope.counts]
    else:  # rated articles have negative approval keys
        n_rated = int(store.redis.zcount(f"{scope}:rank:approval", "-inf", 0))
        if hot and _is_window(scope):
            present = store.redis.zmscore(f"{scope}:ids", hot)
            hot = [a for a, score in zip(hot, present, strict=True) if score is not None]
    top_n, bottom_n = min(ends, (n_rated + 1) // 2), min(ends, n_rated // 2)
    top = _order(store, "approval", None, scope, trend, 0, top_n)[1] if top_n else []
    bottom = _order(store, "worst", None, scope, trend, 0, bottom_n)[1] if bottom_n else []
    moving = hot[:ends]
    shown = list(dict.fromkeys(top + bottom + moving))
    by_id = {f["id"]: f for f in figures(store, shown, now, trend, scope)}
    return {
        "totals": site_totals(rows, site_choices(store, site)),
        "top": [by_id[a] for a in top],
        "bottom": [by_id[a] for a in bottom],
        "trending": [by_id[a] for a in moving],
        "sections": rows,
    }


# -- one article's time series ---------------------------------------------------------
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


def bucket_sums(store: Store, article_ids: list[str],
                segments: list[tuple[str, datetime]]) -> dict[str, Counter[str]]:
    """Each article's bucket fields (as `article_series` reads them) summed over the
    segments ("hour" or "day", start), in one round trip."""
    pipe = store.redis.pipeline(transaction=False)
    for article_id in article_ids:
        for bucket, start in segments:
            pipe.hgetall(_bucket_key(store, store.keys.article(article_id), bucket, start))
    replies = iter(pipe.execute())
    return {article_id: _sum(next(replies) for _ in segments) for article_id in article_ids}


def _per_link(fields: dict[str, str]) -> dict[str, dict[str, int]]:
    """Link id -> its clicks and impressions in one article bucket."""
    found: dict[str, dict[str, int]] = {}
    for field, value in fields.items():
        what, _, link = field.partition(":")
        if link and what in ("click", "imp"):
            counted = found.setdefault(link, {"clicks": 0, "impressions": 0})
            counted["clicks" if what == "click" else "impressions"] = int(value)
    return found


def article_series(store: Store, article_id: str, window: Range) -> dict[str, Any] | None:
    """Per bucket: reactions taken/withdrawn per choice, votes cast by channel, reasons,
    poll votes, links (in all and per link id), and the activity refused (REFUSED)."""
    keys = store.keys
    owner = keys.article(article_id)
    pipe = store.redis.pipeline(transaction=False)
    pipe.hmget(owner, "title", "site", "reactions")
    pipe.zrange(keys.article_polls(article_id), 0, -1)
    (title, site, own), poll_ids = pipe.execute()
    if title is None:
        return None
    starts = window.starts()
    pipe = store.redis.pipeline(transaction=False)
    for start in starts:
        pipe.hgetall(_bucket_key(store, owner, window.bucket, start))
        for poll_id in poll_ids:
            pipe.hgetall(_bucket_key(store, keys.poll(poll_id), window.bucket, start))
    found = pipe.execute()
    # The article's current choices, then any retired one its buckets still hold (each
    # start's article bucket comes before its polls').
    choices = list(dict.fromkeys(sites.reaction_set(store, site, own)["choices"] + [
        k[1:] for fields in found[::1 + len(poll_ids)] for k in fields if k[:1] in "+-"]))
    replies = iter(found)
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
                "links": _per_link(fields),
                "channels": {ch: int(fields.get("channel:" + ch, 0)) for ch in CHANNELS},
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



def poll_series(store: Store, poll: polls.Poll, window: Range) -> dict[str, Any]:
    """Per bucket: the poll's votes (new and changed) and the answers taken and
    withdrawn per option, from the buckets its vote script keeps."""
    poll_id = poll.id
    starts = window.starts()
    pipe = store.redis.pipeline(transaction=False)
    for start in starts:
        pipe.hgetall(_bucket_key(store, store.keys.poll(poll_id), window.bucket, start))
    option_ids = [option["id"] for option in poll.options]
    points = [
        {
            "start": iso(start),
            "votes": int(fields.get("votes", 0)),
            "added": {o: int(fields.get("+" + o, 0)) for o in option_ids},
            "removed": {o: int(fields.get("-" + o, 0)) for o in option_ids},
        }
        for start, fields in zip(starts, pipe.execute(), strict=True)
    ]
    return {
        "poll": poll_id,
        "bucket": window.bucket,
        "since": iso(window.since),
        "until": iso(window.until),
        "options": poll.options,
        "points": points,
    }
