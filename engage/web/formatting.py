"""How the dashboard writes numbers and times, on its pages and in its charts."""

from __future__ import annotations

from datetime import UTC, datetime


def pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def fmt_time(value: str | None) -> str:
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    return when.astimezone(UTC).strftime("%d %b %Y %H:%M UTC")
