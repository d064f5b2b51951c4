"""The history charts of a poll's answers and of an article's related links: which
series are drawn, the chart, its legend and the table that says the same in numbers."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from markupsafe import Markup

from engage.web.charts import PALETTE, stacked_chart

OTHER = "\t"  # the key of the series grouping the rest: never an option or link id


def _grouped(named: list[tuple[str, str]], totals: Counter[str],
             other_label: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(the series drawn, each key -> its series key): every one when the palette has a
    colour for each, else the busiest but one and the rest together, so no two series
    share a colour."""
    if len(named) <= len(PALETTE):
        return named, {key: key for key, _ in named}
    busiest = sorted(named, key=lambda kl: -totals[kl[0]])[:len(PALETTE) - 1]
    kept = [kl for kl in named if kl in busiest]
    drawn = {key for key, _ in kept}
    return kept + [(OTHER, other_label)], {
        key: key if key in drawn else OTHER for key, _ in named}


def _history(points: list[dict[str, Any]], named: list[tuple[str, str]],
             values: list[dict[str, int]], bucket: str, chart_id: str, title: str,
             other_label: str) -> dict[str, Any]:
    """Chart and legend of per-bucket `values` (key -> n) of the `named` series."""
    totals: Counter[str] = Counter()
    for value in values:
        totals.update(value)
    series, into = _grouped(named, totals, other_label)
    folded = []
    for value in values:
        got: Counter[str] = Counter()
        for key, n in value.items():
            if key in into:
                got[into[key]] += n
        folded.append(dict(got))
    chart: Markup = stacked_chart(
        [{"start": p["start"], "values": v} for p, v in zip(points, folded, strict=True)],
        series, bucket, chart_id, title)
    in_range: Counter[str] = Counter()
    for value in folded:
        in_range.update(value)
    return {
        "chart": chart,
        "legend": [{"key": key, "label": name, "color": PALETTE[i], "total": in_range[key]}
                   for i, (key, name) in enumerate(series)],
    }


def _label(start: str, bucket: str) -> str:
    return datetime.fromisoformat(start).strftime(
        "%d %b %H:%M" if bucket == "hour" else "%d %b %Y")


def poll_history(series: dict[str, Any]) -> dict[str, Any]:
    """The answers taken per bucket, per option (a changed answer counts for its new
    options); the table (one row per bucket and option with answers, newest first,
    narrow enough for a phone) adds the withdrawn ones."""
    points, bucket = series["points"], series["bucket"]
    named = [(o["id"], o["label"]) for o in series["options"]]
    rows = [{"label": _label(p["start"], bucket), "name": name, "taken": p["added"][key],
             "withdrawn": p["removed"][key]}
            for p in reversed(points) for key, name in named
            if p["added"][key] or p["removed"][key]]
    return {
        **_history(points, named, [{k: n for k, n in p["added"].items() if n} for p in points],
                   bucket, "poll-chart", f"Answers taken per {bucket}, by option",
                   "Other options"),
        "rows": rows,
        "votes": sum(p["votes"] for p in points),
        "withdrawn": sum(sum(p["removed"].values()) for p in points),
    }


def link_history(series: dict[str, Any], current: list[dict[str, Any]]) -> dict[str, Any]:
    """The related links' clicks per bucket, per link (those curated now in their order,
    then any removed since that still has figures in range); the table (one row per
    bucket and link with clicks or impressions, newest first) adds the impressions and
    the click-through rate."""
    points, bucket = series["points"], series["bucket"]
    named = [(link["id"], link["title"]) for link in current]
    known = {key for key, _ in named}
    named += [(key, f"Removed link {key}") for key in sorted(
        {key for p in points for key in p["links"]} - known)]
    rows = []
    for p in reversed(points):
        for key, name in named:
            got = p["links"].get(key)
            if got:
                clicks, imps = got["clicks"], got["impressions"]
                rows.append({"label": _label(p["start"], bucket), "name": name,
                             "clicks": clicks, "impressions": imps,
                             "ctr": clicks / imps if imps else None})
    clicks = sum(p["clicks"] for p in points)
    impressions = sum(p["impressions"] for p in points)
    return {
        **_history(points, named,
                   [{k: c["clicks"] for k, c in p["links"].items() if c["clicks"]}
                    for p in points],
                   bucket, "links-chart", f"Related link clicks per {bucket}, by link",
                   "Other links"),
        "rows": rows,
        "clicks": clicks,
        "impressions": impressions,
        "ctr": clicks / impressions if impressions else None,
    }
