"""Metric definitions (bounded labels only), request instrumentation and rendering.

Labels never carry ids or raw paths: `kind` is reaction|poll, `reason` is one of
REJECT_REASONS (votes) or LINK_REFUSALS (links), routes are URL rule templates
("unmatched" when no rule matched), methods come from a fixed list, statuses are
classes (2xx..5xx), Redis `op` is a script name, "pipeline" or a command name.

Under granian or gunicorn every worker is its own process, so its counters live in its
own memory. With `PROMETHEUS_MULTIPROC_DIR` set (`engage serve` and gunicorn.conf.py set
it), prometheus client writes each process's values to files in that directory and a
scrape sums them, so any worker answers for all of them and a dead worker's counts stay
counted.
The variable must be set before prometheus_client is first imported.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

from flask import Flask, g, has_request_context
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

REJECT_REASONS = ("duplicate", "throttled", "closed", "invalid", "unknown", "unavailable")
VOTE_KINDS = ("reaction", "poll")
LINK_EVENT_NAMES = ("click", "impression")
LINK_REFUSALS = ("click_duplicate", "click_bot", "click_prefetch", "impression_over_cap")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WEBHOOK_OUTCOMES = ("delivered", "failed", "dead", "dropped")
REDIS_ERROR_KINDS = ("connection", "timeout", "response", "other")

# Few buckets on purpose: every bucket is one series per route.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.025, 0.1, 0.5)
WEBHOOK_BUCKETS = (0.01, 0.05, 0.25, 1.0, 5.0)

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
LINK_REFUSED = Counter(
    "engage_link_events_refused",
    "Related-link clicks and impressions not counted, by reason.", ["reason"]
)
HTTP_REQUESTS = Counter(
    "engage_http_requests", "HTTP requests by route template, method and status class.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "engage_http_request_duration_seconds", "Time to answer a request, by route template.",
    ["route"], buckets=HTTP_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge(
    "engage_http_requests_in_progress", "Requests being answered now, summed over live workers.",
    multiprocess_mode="livesum",
)
REDIS_DURATION = Histogram(
    "engage_redis_command_duration_seconds",
    "Time of one logical Redis operation (a script, a pipeline or a command), retries included.",
    ["op"], buckets=REDIS_BUCKETS,
)
REDIS_ERRORS = Counter(
    "engage_redis_errors", "Redis operations that failed, by operation and error kind.",
    ["op", "kind"],
)
WEBHOOK_DELIVERIES = Counter(
    "engage_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, failed (retry scheduled), dead, dropped.",
    ["outcome"],
)
WEBHOOK_DURATION = Histogram(
    "engage_webhook_delivery_duration_seconds", "Time of one webhook delivery attempt.",
    buckets=WEBHOOK_BUCKETS,
)
WEBHOOK_DEAD_LETTERS = Counter(
    "engage_webhook_dead_letters", "Deliveries given up after the last retry."
)
WEBHOOK_RETRY_QUEUE = Gauge(
    "engage_webhook_retry_queue", "Deliveries waiting for a retry (seen by the worker).",
    multiprocess_mode="livemax",
)
WEBHOOK_EVENTS = Counter(
    "engage_webhook_events", "Stream events the worker has read and acknowledged."
)
AGGREGATE_EVENTS = Counter(
    "engage_aggregate_events", "Stream events applied to the rankings and section figures."
)
BUILD_INFO = Gauge(
    "engage_build_info", "Always 1; the labels say which engage and Python run.",
    ["version", "python"], multiprocess_mode="max",
)


# Vote views report what a vote did (`vote_outcome`); every refusal, from the schema,
# the limiter, the store or a Redis outage, is counted from its status by `_observe`.
VOTE_ENDPOINTS = {"reactions.MyReaction": "reaction", "polls.MyPollVote": "poll"}
_REASON_BY_STATUS = {
    400: "invalid", 404: "unknown", 409: "closed", 422: "invalid", 429: "throttled",
    503: "unavailable",
}


def _counted() -> None:
    if has_request_context():
        g.vote_counted = True


def vote_accepted(kind: str) -> None:
    VOTES_ACCEPTED.labels(kind).inc()
    _counted()


def vote_rejected(kind: str, reason: str) -> None:
    VOTES_REJECTED.labels(kind, reason if reason in REJECT_REASONS else "invalid").inc()
    _counted()


def vote_outcome(kind: str, changed: bool) -> None:
    """An answered vote: it changed something, or repeated what the reader had."""
    if changed:
        vote_accepted(kind)
    else:
        vote_rejected(kind, "duplicate")


def link_event(event: str) -> None:
    """`event` is "click" or "impression"."""
    LINK_EVENTS.labels(event=event).inc()


def link_refused(reason: str, n: int = 1) -> None:
    """`reason` is one of LINK_REFUSALS."""
    if n:
        LINK_REFUSED.labels(reason=reason).inc(n)


def redis_observed(op: str, seconds: float, error: str | None = None) -> None:
    """One logical Redis operation; `error` is one of REDIS_ERROR_KINDS or None."""
    REDIS_DURATION.labels(op).observe(seconds)
    if error is not None:
        REDIS_ERRORS.labels(op=op, kind=error).inc()


def webhook_attempt(outcome: str, seconds: float | None = None) -> None:
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
    if seconds is not None:
        WEBHOOK_DURATION.observe(seconds)
    if outcome == "dead":
        WEBHOOK_DEAD_LETTERS.inc()


def prime() -> None:
    """Create the known label sets at zero, so dashboards and alerts see every series."""
    for kind in VOTE_KINDS:
        VOTES_ACCEPTED.labels(kind=kind)
        for reason in REJECT_REASONS:
            VOTES_REJECTED.labels(kind=kind, reason=reason)
    for event in LINK_EVENT_NAMES:
        LINK_EVENTS.labels(event=event)
    for reason in LINK_REFUSALS:
        LINK_REFUSED.labels(reason=reason)
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_DELIVERIES.labels(outcome=outcome)
    BUILD_INFO.labels(version=_version(), python=platform.python_version()).set(1)


def _version() -> str:
    from engage import __version__

    return __version__


# -- HTTP instrumentation ---------------------------------------------------------------
def request_started() -> None:
    g.metrics_live = True
    HTTP_IN_PROGRESS.inc()


def request_answered(status: int, route: str, method: str, endpoint: str | None,
                     seconds: float | None) -> None:
    """Count and time a response; `route` is the URL rule ("unmatched" without one)."""
    if method not in HTTP_METHODS:
        method = "other"
    HTTP_REQUESTS.labels(route, method, f"{status // 100}xx").inc()
    if seconds is not None:
        HTTP_DURATION.labels(route).observe(seconds)
    kind = VOTE_ENDPOINTS.get(endpoint or "")
    if kind and method in ("PUT", "DELETE") and not g.pop("vote_counted", False):
        reason = _REASON_BY_STATUS.get(status)
        if reason:
            vote_rejected(kind, reason)


def request_refused(status: int, method: str) -> None:
    """A request the HTTP server refused before the app saw it (engage.server): counted
    under the route "refused", since it never matched one."""
    if method not in HTTP_METHODS:
        method = "other"
    HTTP_REQUESTS.labels("refused", method, f"{status // 100}xx").inc()


def request_ended() -> None:
    # teardown runs even when no response was made, so the gauge cannot leak upwards.
    if g.pop("metrics_live", False):
        HTTP_IN_PROGRESS.dec()


def init_app(app: Flask) -> None:
    """Series at zero; the app factory's first hooks (shared with the request log) call
    `request_started`, `request_answered` and `request_ended` for every request."""
    # `_created` samples would double the series for no use on a dashboard.
    disable_created_metrics()
    prime()


# -- rendering -----------------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Probe:
    """Scrape-time facts that are not counters, e.g. whether Redis answers now."""

    def __init__(self, redis_up: Callable[[], bool] | None) -> None:
        self.redis_up = redis_up

    def collect(self) -> list[GaugeMetricFamily]:
        if self.redis_up is None:
            return []
        family = GaugeMetricFamily("engage_redis_up", "1 when Redis answered a ping at scrape.")
        family.add_metric([], 1.0 if self.redis_up() else 0.0)
        return [family]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def forget_dead_processes(path: str) -> None:
    """Drop the live gauges of processes that have exited, so no gauge keeps a dead
    worker's value. The server may replace a killed worker without telling anyone (granian
    has no hook for it), so every scrape looks; counters stay, so sums never go down."""
    for name in os.listdir(path):
        if not name.startswith("gauge_live") or not name.endswith(".db"):
            continue
        pid = name[:-3].rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                multiprocess.mark_process_dead(int(pid), path)
            except FileNotFoundError:  # another worker's scrape removed it first
                pass


def render(redis_up: Callable[[], bool] | None = None) -> bytes:
    """The text exposition of this process, or of every worker in multiprocess mode."""
    extra = CollectorRegistry()
    extra.register(_Probe(redis_up))
    if path := multiprocess_dir():
        forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry) + generate_latest(extra)
    return generate_latest(REGISTRY) + generate_latest(extra)
