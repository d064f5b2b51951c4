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
             values: list[dict[str, int]], extra: list[dict[str, Any]], bucket: str,
             chart_id: str, title: str, other_label: str) -> dict[str, Any]:
    """Chart, legend and rows (the buckets with activity, newest first) of per-bucket
    `values` (key -> n) of the `named` series; `extra` rides along on each row."""
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
    label = "%d %b %H:%M" if bucket == "hour" else "%d %b %Y"
    rows = [{"label": datetime.fromisoformat(p["start"]).strftime(label), "values": v, **x}
            for p, v, x in zip(points, folded, extra, strict=True) if v or any(x.values())]
    in_range: Counter[str] = Counter()
    for value in folded:
        in_range.update(value)
    return {
        "chart": chart,
        "legend": [{"key": key, "label": name, "color": PALETTE[i], "total": in_range[key]}
                   for i, (key, name) in enumerate(series)],
        "rows": rows[::-1],
    }


def poll_history(series: dict[str, Any]) -> dict[str, Any]:
    """The answers taken per bucket, per option (a changed answer counts for its new
    options); the table adds the withdrawn ones and the votes cast."""
    points = series["points"]
    named = [(o["id"], o["label"]) for o in series["options"]]
    extra = [{"votes": p["votes"], "withdrawn": sum(p["removed"].values())} for p in points]
    return {
        **_history(points, named, [{k: n for k, n in p["added"].items() if n}
                                   for p in points],
                   extra, series["bucket"], "poll-chart",
                   f"Answers taken per {series['bucket']}, by option", "Other options"),
        "votes": sum(x["votes"] for x in extra),
        "withdrawn": sum(x["withdrawn"] for x in extra),
    }


def link_history(series: dict[str, Any], current: list[dict[str, Any]]) -> dict[str, Any]:
    """The related links' clicks per bucket, per link (those curated now in their order,
    then any removed since that still has figures in range); the table adds the
    impressions and the click-through rate."""
    points = series["points"]
    named = [(link["id"], link["title"]) for link in current]
    known = {key for key, _ in named}
    named += [(key, f"Removed link {key}") for key in sorted(
        {key for p in points for key in p["links"]} - known)]
    extra = [{"clicks": p["clicks"], "impressions": p["impressions"]} for p in points]
    clicks = sum(p["clicks"] for p in points)
    impressions = sum(p["impressions"] for p in points)
    return {
        **_history(points, named,
                   [{k: c["clicks"] for k, c in p["links"].items() if c["clicks"]}
                    for p in points],
                   extra, series["bucket"], "links-chart",
                   f"Related link clicks per {series['bucket']}, by link", "Other links"),
        "clicks": clicks,
        "impressions": impressions,
        "ctr": clicks / impressions if impressions else None,
    }
