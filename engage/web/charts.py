"""The dashboard's charts: SVG drawn on the server and labelled directly, so the pages
need no chart library and no inline script."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from engage.web.formatting import fmt_time, pct

COLORS = {"up": "#2f7d4f", "down": "#c2491d", "grid": "#d9dde3", "text": "#3b4250"}


def _time_axis(points: list[dict[str, Any]], hourly: bool, left: float, step: float,
               height: int) -> list[str]:
    """Up to five time labels under a bar chart's points, the first and last at its ends."""
    out = []
    ticks = min(5, len(points))
    for t in range(ticks):
        index = round(t * (len(points) - 1) / max(1, ticks - 1))
        when = datetime.fromisoformat(points[index]["start"])
        label = when.strftime("%d %b %H:00" if hourly else "%d %b")
        x = left + index * step + step / 2
        anchor = "start" if t == 0 else "end" if t == ticks - 1 else "middle"
        # Odd ticks give way on a phone, where the text is scaled up (dashboard.css).
        kind = "axis tick-minor" if t % 2 else "axis"
        out.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="{anchor}" '
                   f'class="{kind}">{label}</text>')
    return out


def _nice_max(value: int) -> int:
    """A round top for the axis: the smallest 1, 2 or 5 x 10^n not below `value`."""
    for power in range(0, 9):
        for step in (1, 2, 5):
            candidate = step * 10**power
            if candidate >= value:
                return max(candidate, 1)
    return value


def reactions_chart(series: dict[str, Any]) -> Markup:
    """Diverging columns: the first choice up, the others down, labelled on the chart."""
    points = series["points"]
    choices = series["choices"]
    up_choice, down_choices = choices[0], choices[1:]
    ups = [p["added"][up_choice] for p in points]
    downs = [sum(p["added"][c] for c in down_choices) for p in points]
    width, height = 860, 300
    left, right, top, bottom = 58, 12, 40, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    scale = _nice_max(max(ups + downs + [1]))
    mid = top + plot_h / 2
    half = plot_h / 2
    step = plot_w / max(1, len(points))
    bar = max(1.0, step * 0.72)
    hourly = series["bucket"] == "hour"
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(up_choice)} and {escape("/".join(down_choices))} '
        f'reactions per {series["bucket"]}</title>',
    ]
    for value, y in ((scale, top), (0, mid), (scale, top + plot_h)):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{COLORS["grid"]}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="axis">{value}</text>')
    for index, point in enumerate(points):
        x = left + index * step + (step - bar) / 2
        start = fmt_time(point["start"])
        if ups[index]:
            h = half * ups[index] / scale
            parts.append(f'<rect x="{x:.1f}" y="{mid - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS["up"]}"><title>{escape(start)}: '
                         f'{ups[index]} {escape(up_choice)}</title></rect>')
        if downs[index]:
            h = half * downs[index] / scale
            parts.append(f'<rect x="{x:.1f}" y="{mid:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS["down"]}"><title>{escape(start)}: '
                         f'{downs[index]} {escape("/".join(down_choices))}</title></rect>')
    parts += _time_axis(points, hourly, left, step, height)
    up_total, down_total = sum(ups), sum(downs)
    parts.append(f'<text x="{left}" y="20" class="label" fill="{COLORS["up"]}">'
                 f'▲ {escape(up_choice)}: {up_total} in range</text>')
    parts.append(f'<text x="{width - right}" y="20" text-anchor="end" class="label" '
                 f'fill="{COLORS["down"]}">▼ {escape("/".join(down_choices))}: '
                 f'{down_total} in range</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def sections_chart(rows: list[dict[str, Any]], choices: list[str]) -> Markup:
    """One 100 % bar per section, its approval share; name and size written above it."""
    if not rows:
        return Markup('<p class="muted">No sections yet.</p>')
    width, row_h = 480, 58
    height = row_h * len(rows)
    parts = [f'<svg class="chart sections" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Approval by section" xmlns="http://www.w3.org/2000/svg">']
    for index, row in enumerate(rows):
        y = index * row_h
        share = row["approval"]
        plural = "s" if row["articles"] != 1 else ""
        parts.append(f'<text x="0" y="{y + 17}" class="label">{escape(row["section"])}</text>')
        parts.append(f'<text x="{width}" y="{y + 17}" text-anchor="end" class="axis">'
                     f'{row["total"]} votes · {row["articles"]} article{plural}</text>')
        parts.append(f'<rect x="0" y="{y + 25}" width="{width}" height="24" rx="3" '
                     f'fill="{COLORS["grid"]}"/>')
        if share is None:
            parts.append(f'<text x="8" y="{y + 42}" class="axis">no votes</text>')
            continue
        yes_w = width * share
        parts.append(f'<rect x="0" y="{y + 25}" width="{yes_w:.1f}" height="24" rx="3" '
                     f'fill="{COLORS["up"]}"/>')
        text = f"{pct(share)} {escape(choices[0])}"
        if share > 0.3:
            parts.append(f'<text x="8" y="{y + 42}" class="inbar">{text}</text>')
        else:
            parts.append(f'<text x="{yes_w + 6:.1f}" y="{y + 42}" class="axis">{text}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# Told apart by colour-blind readers (Okabe-Ito hues, darkened to 3:1 on white); the
# legend and the table under each chart name every series in words too.
PALETTE = ("#0072b2", "#b35900", "#007a5e", "#a8447f", "#5b5b5b", "#6a4c93")


def stacked_chart(points: list[dict[str, Any]], series: list[tuple[str, str]], bucket: str,
                  chart_id: str, title: str) -> Markup:
    """Stacked columns, one per bucket: each point's `values` (series key -> n) in the
    series' order and PALETTE colours; the legend is the page's, in HTML."""
    width, height = 860, 260
    left, right, top, bottom = 58, 12, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(p["values"].get(key, 0) for key, _ in series) for p in points]
    scale = _nice_max(max(totals + [1]))
    step = plot_w / max(1, len(points))
    bar = max(1.0, step * 0.72)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for value, y in ((scale, top), (0, top + plot_h)):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{COLORS["grid"]}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="axis">{value}</text>')
    for index, point in enumerate(points):
        x = left + index * step + (step - bar) / 2
        base = top + plot_h
        start = fmt_time(point["start"])
        for number, (key, label) in enumerate(series):
            n = point["values"].get(key, 0)
            if not n:
                continue
            h = plot_h * n / scale
            base -= h
            parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[number % len(PALETTE)]}">'
                         f'<title>{escape(start)}: {n} {escape(label)}</title></rect>')
    parts += _time_axis(points, bucket == "hour", left, step, height)
    parts.append("</svg>")
    return Markup("".join(parts))
