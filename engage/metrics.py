"""Metric definitions (bounded labels only) and the /metrics view.

Labels never carry ids or raw paths: `kind` is reaction|poll|link, `reason` is one of
REJECT_REASONS, routes are URL rule templates.
"""

from __future__ import annotations

from prometheus_client import Counter

REJECT_REASONS = ("duplicate", "throttled", "closed", "invalid", "unknown", "unavailable")

VOTES_ACCEPTED = Counter(
    "engage_votes_accepted", "Votes that changed state, by kind.", ["kind"]
)
VOTES_REJECTED = Counter(
    "engage_votes_rejected", "Votes refused or without effect, by kind and reason.",
    ["kind", "reason"],
)
LINK_EVENTS = Counter(
    "engage_link_events", "Related-link clicks and impressions.", ["event"]
)


def vote_accepted(kind: str) -> None:
    VOTES_ACCEPTED.labels(kind=kind).inc()


def vote_rejected(kind: str, reason: str) -> None:
    VOTES_REJECTED.labels(kind=kind, reason=reason if reason in REJECT_REASONS else "invalid").inc()


def link_event(event: str) -> None:
    """`event` is "click" or "impression"."""
    LINK_EVENTS.labels(event=event).inc()
