"""Metric definitions (bounded labels only), request instrumentation and rendering.

Labels never carry ids or raw paths: `kind` is reaction|poll, `reason` is one of
REJECT_REASONS (votes) or LINK_REFUSALS (links), routes are URL rule templates in the
OpenAPI document's style ("/api/v1/articles/{article_id}/reactions"; "unmatched" when
no rule matched), methods come from a fixed list, statuses are classes (2xx..5xx), Redis
`op` is a script name, "pipeline" or a command name. The Redis time histogram is by
`kind` only (REDIS_OP_KINDS: script, pipeline, command); each `op` has two counters,
operations and seconds, which give its rate and mean time in 2 series where a histogram
takes 7 (see the scrape's cost below).

Each process role exports its own families and no one else's: the serving processes
(`app_registry`) the HTTP, vote and link families; `engage worker` (`worker_registry`)
the webhook families; both the Redis and aggregates families and
`engage_build_info` (the aggregates run in the worker and beside `engage serve`). A
role's families are made the first time that role uses them, so a process never writes
another role's series, not even at zero.

Series that would otherwise appear only with the first failure (rejected votes, refused
links, failed webhook deliveries, Redis errors of each kind) are made at zero when the
role starts (`prime_app`, `prime_worker`, `prime_redis_ops`), so `rate()` and dashboards
see them at once. Not one per route: a route's 5xx series starts with its first 5xx
(the error-ratio alert and panel sum over routes).

Under granian every worker is its own process, so its counters live in its own memory.
With `PROMETHEUS_MULTIPROC_DIR` set (`engage serve` sets it), prometheus client's
multiprocess mode, as its documentation lays it out: each process writes its values to
files in that directory, a scrape sums them, so any worker answers for all of them and
a dead worker's counts stay counted; the directory is emptied at start and an exited
worker is marked dead (engage.server.MetricsDirectory).
The variable must be set before prometheus_client is first imported. That mode has no
process metrics (memory, CPU, files: a collector sees only the process it runs in), so
`engage_process_*` come from single-process registries only: `engage worker` and an app
without the directory.

A scrape reads every entry of every process's files, so its cost grows with series x
processes: histograms have few buckets, and zeros are made only where a panel or an
alert needs the series before its first change.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable, Iterable
from functools import cache

from flask import Flask, g, has_request_context, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engage import fetching
from engage.schemas import ALERT_KINDS

REJECT_REASONS = ("duplicate", "throttled", "closed", "invalid", "unknown", "unavailable")
VOTE_KINDS = ("reaction", "poll")
LINK_EVENT_NAMES = ("click", "impression")
LINK_REFUSALS = ("click_duplicate", "click_throttled", "click_bot", "click_prefetch",
                 "impression_over_cap")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WEBHOOK_OUTCOMES = ("delivered", "failed", "dead", "dropped")
ALERTS_FIRED = (*ALERT_KINDS, "digest")
ALERT_CHANNELS = ("email", "webhook", "slack")
REDIS_ERROR_KINDS = ("connection", "timeout", "response", "other")
REDIS_OP_KINDS = ("script", "pipeline", "command")
# Page verification (engage/pages.py): what a reader's read of an unknown id did, what a
# verification did, and why one failed (the fetcher's reasons, then the page's).
PAGE_QUEUE_OUTCOMES = ("queued", "waiting", "off_origin", "throttled")
PAGE_OUTCOMES = ("created", "updated", "unchanged", "kept", "failed")
PAGE_FAILURES = (*fetching.REASONS, "no_id", "other_id", "error")
# Feed polls (engage/feeds.py): what a poll did, why one failed (the fetcher's reasons,
# then the parser's), and what became of each item.
FEED_OUTCOMES = ("fetched", "not_modified", "failed")
FEED_FAILURES = (*fetching.REASONS, "xml_refused", "not_xml", "not_feed", "error")
FEED_ITEM_OUTCOMES = ("created", "updated", "unchanged", "kept", "bad_id", "off_origin",
                      "no_title", "over_limit")

# Few buckets on purpose: a scrape reads every bucket of every label set from every
# process's file. Each bound about 4-5x the last, 0.5 s being the latency alert's.
HTTP_BUCKETS = (0.005, 0.025, 0.1, 0.5, 2.5)
REDIS_BUCKETS = (0.001, 0.005, 0.025, 0.1)
WEBHOOK_BUCKETS = (0.01, 0.05, 0.25, 1.0, 5.0)

disable_created_metrics()  # `_created` samples double the series for no use


class _Families:
    def collectors(self) -> list[Collector]:
        return list(vars(self).values())


class AppFamilies(_Families):
    """The serving processes' families (requests, votes, related links)."""

    def __init__(self) -> None:
        self.votes_accepted = Counter(
            "engage_votes_accepted", "Votes that changed state, by kind.", ["kind"],
            registry=None,
        )
        self.votes_rejected = Counter(
            "engage_votes_rejected", "Votes refused or without effect, by kind and reason.",
            ["kind", "reason"], registry=None,
        )
        self.link_events = Counter(
            "engage_link_events", "Related-link clicks and impressions.", ["event"],
            registry=None,
        )
        self.link_refused = Counter(
            "engage_link_events_refused",
            "Related-link clicks and impressions not counted, by reason.", ["reason"],
            registry=None,
        )
        self.http_requests = Counter(
            "engage_http_requests",
            "HTTP requests by route template, method and status class.",
            ["route", "method", "status"], registry=None,
        )
        self.http_duration = Histogram(
            "engage_http_request_duration_seconds",
            "Time to answer a request, by route template.",
            ["route"], buckets=HTTP_BUCKETS, registry=None,
        )
        self.http_in_progress = Gauge(
            "engage_http_requests_in_progress",
            "Requests being answered now, summed over live workers.",
            multiprocess_mode="livesum", registry=None,
        )
        self.pages_queued = Counter(
            "engage_pages_queued",
            "Unknown article ids readers' pages named, by outcome: queued for "
            "verification, waiting already (or failed lately), off the sites' origins.",
            ["outcome"], registry=None,
        )


class WorkerFamilies(_Families):
    """`engage worker`'s families (webhook deliveries)."""

    def __init__(self) -> None:
        self.deliveries = Counter(
            "engage_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, failed (retry scheduled), "
            "dead, dropped.", ["outcome"], registry=None,
        )
        self.duration = Histogram(
            "engage_webhook_delivery_duration_seconds", "Time of one webhook delivery attempt.",
            buckets=WEBHOOK_BUCKETS, registry=None,
        )
        self.dead_letters = Counter(
            "engage_webhook_dead_letters", "Deliveries given up after the last retry.",
            registry=None,
        )
        self.retry_queue = Gauge(
            "engage_webhook_retry_queue", "Deliveries waiting for a retry (seen by the worker).",
            multiprocess_mode="livemax", registry=None,
        )
        self.events = Counter(
            "engage_webhook_events", "Stream events the worker has read and acknowledged.",
            registry=None,
        )
        self.alerts_fired = Counter(
            "engage_alerts_fired", "Alerts fired, by rule kind (engage/alerts.py).", ["kind"],
            registry=None,
        )
        self.alert_failures = Counter(
            "engage_alert_delivery_failures",
            "Failed attempts to deliver an alert or digest, by channel: email, webhook, slack.",
            ["channel"], registry=None,
        )


class SharedFamilies(_Families):
    """Families every role exports: Redis operations, the aggregates and the build."""

    def __init__(self) -> None:
        self.redis_duration = Histogram(
            "engage_redis_command_duration_seconds",
            "Time of one logical Redis operation, retries included, by kind: script, "
            "pipeline, command.", ["kind"], buckets=REDIS_BUCKETS, registry=None,
        )
        self.redis_ops = Counter(
            "engage_redis_commands", "Logical Redis operations, by operation.", ["op"],
            registry=None,
        )
        self.redis_seconds = Counter(
            "engage_redis_command_seconds",
            "Time spent in logical Redis operations, retries included, by operation.",
            ["op"], registry=None,
        )
        self.redis_errors = Counter(
            "engage_redis_errors", "Redis operations that failed, by operation and error kind.",
            ["op", "kind"], registry=None,
        )
        self.aggregate_events = Counter(
            "engage_aggregate_events",
            "Stream events applied to the rankings and section figures.", registry=None,
        )
        self.page_verifications = Counter(
            "engage_page_verifications",
            "Publisher pages verified, by outcome: created, updated, unchanged, kept (an "
            "editor's article), failed.", ["outcome"], registry=None,
        )
        self.page_failures = Counter(
            "engage_page_verification_failures",
            "Page verifications that registered nothing, by reason code.", ["reason"],
            registry=None,
        )
        self.feed_polls = Counter(
            "engage_feed_polls",
            "Feed and sitemap fetches, by outcome: fetched, not_modified (a 304, or the "
            "same body), failed.", ["outcome"], registry=None,
        )
        self.feed_failures = Counter(
            "engage_feed_poll_failures", "Feed polls that read nothing, by reason code.",
            ["reason"], registry=None,
        )
        self.feed_items = Counter(
            "engage_feed_items",
            "Feed items read, by outcome: created, updated, unchanged, kept (an editor's "
            "article), or skipped (bad_id, off_origin, no_title, over_limit).", ["outcome"],
            registry=None,
        )
        self.build_info = Gauge(
            "engage_build_info", "Always 1; the labels say which engage and Python run.",
            ["version", "python"], multiprocess_mode="max", registry=None,
        )
        from engage import __version__

        self.build_info.labels(version=__version__, python=platform.python_version()).set(1)


# Made on first use, each once per process (a forked worker keeps its parent's objects;
# prometheus client moves their values to the child's own files).
app_families = cache(AppFamilies)
worker_families = cache(WorkerFamilies)
shared_families = cache(SharedFamilies)


def _registry(role: _Families) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (*role.collectors(), *shared_families().collectors()):
        registry.register(collector)
    ProcessCollector(namespace="engage", registry=registry)
    return registry


@cache
def app_registry() -> CollectorRegistry:
    """What one serving process exports when there is no multiprocess directory."""
    return _registry(app_families())


@cache
def worker_registry() -> CollectorRegistry:
    """What `engage worker` exports (one process, no multiprocess directory)."""
    return _registry(worker_families())


# Vote views report what a vote did (`vote_outcome`); every refusal, from the schema,
# the limiter, the store or a Redis outage, is counted under the reason its error
# answer recorded (engage.errors).
VOTE_ENDPOINTS = {"reactions.MyReaction": "reaction", "polls.MyPollVote": "poll",
                  # newsletters, pages without JavaScript, AMP (engage/web/ballot.py)
                  "ballot.email_vote": "reaction", "ballot.form_vote": "reaction",
                  "ballot.amp_vote": "reaction"}


def _counted() -> None:
    if has_request_context():
        g.vote_counted = True


def vote_rejected(kind: str, reason: str) -> None:
    app_families().votes_rejected.labels(
        kind, reason if reason in REJECT_REASONS else "invalid").inc()
    _counted()


def vote_outcome(kind: str, changed: bool) -> None:
    """An answered vote: it changed something, or repeated what the reader had."""
    if changed:
        app_families().votes_accepted.labels(kind).inc()
        _counted()
    else:
        vote_rejected(kind, "duplicate")


def link_event(event: str) -> None:
    """`event` is "click" or "impression"."""
    app_families().link_events.labels(event=event).inc()


def link_refused(reason: str, n: int = 1) -> None:
    """`reason` is one of LINK_REFUSALS."""
    if n:
        app_families().link_refused.labels(reason=reason).inc(n)


def aggregate_events(count: int) -> None:
    shared_families().aggregate_events.inc(count)


def page_queued(outcome: str, n: int = 1) -> None:
    """`outcome` is one of PAGE_QUEUE_OUTCOMES."""
    if n:
        app_families().pages_queued.labels(outcome=outcome).inc(n)


def page_verified(outcome: str, reason: str | None = None) -> None:
    """`outcome` is one of PAGE_OUTCOMES; a failure's `reason` one of PAGE_FAILURES."""
    families = shared_families()
    families.page_verifications.labels(outcome=outcome).inc()
    if reason is not None:
        families.page_failures.labels(
            reason=reason if reason in PAGE_FAILURES else "error").inc()


def feed_polled(outcome: str, reason: str | None = None) -> None:
    """`outcome` is one of FEED_OUTCOMES; a failure's `reason` one of FEED_FAILURES."""
    families = shared_families()
    families.feed_polls.labels(outcome=outcome).inc()
    if reason is not None:
        families.feed_failures.labels(
            reason=reason if reason in FEED_FAILURES else "error").inc()


def feed_items(outcome: str, n: int = 1) -> None:
    """`outcome` is one of FEED_ITEM_OUTCOMES."""
    if n:
        shared_families().feed_items.labels(outcome=outcome).inc(n)


def redis_observed(kind: str, op: str, seconds: float, error: str | None = None) -> None:
    """One logical Redis operation; `kind` is one of REDIS_OP_KINDS, `error` one of
    REDIS_ERROR_KINDS or None."""
    families = shared_families()
    families.redis_duration.labels(kind).observe(seconds)
    families.redis_ops.labels(op).inc()
    families.redis_seconds.labels(op).inc(seconds)
    if error is not None:
        families.redis_errors.labels(op=op, kind=error).inc()


def webhook_attempt(outcome: str, seconds: float | None = None) -> None:
    families = worker_families()
    families.deliveries.labels(outcome=outcome).inc()
    if seconds is not None:
        families.duration.observe(seconds)
    if outcome == "dead":
        families.dead_letters.inc()


def webhook_events(count: int) -> None:
    worker_families().events.inc(count)


def webhook_retry_queue(size: int) -> None:
    worker_families().retry_queue.set(size)


# -- series at zero ------------------------------------------------------------------------
def prime_app() -> None:
    """The serving role's known label sets at zero."""
    families = app_families()
    for kind in VOTE_KINDS:
        families.votes_accepted.labels(kind=kind)
        for reason in REJECT_REASONS:
            families.votes_rejected.labels(kind=kind, reason=reason)
    for event in LINK_EVENT_NAMES:
        families.link_events.labels(event=event)
    for reason in LINK_REFUSALS:
        families.link_refused.labels(reason=reason)
    for outcome in PAGE_QUEUE_OUTCOMES:
        families.pages_queued.labels(outcome=outcome)


def prime_worker() -> None:
    """The worker role's known label sets at zero."""
    families = worker_families()
    for outcome in WEBHOOK_OUTCOMES:
        families.deliveries.labels(outcome=outcome)
    for kind in ALERTS_FIRED:
        families.alerts_fired.labels(kind=kind)
    for channel in ALERT_CHANNELS:
        families.alert_failures.labels(channel=channel)


def prime_pages() -> None:
    """Page verification's series at zero (the job runs in `engage worker` and beside
    `engage serve`)."""
    families = shared_families()
    for outcome in PAGE_OUTCOMES:
        families.page_verifications.labels(outcome=outcome)
    for reason in PAGE_FAILURES:
        families.page_failures.labels(reason=reason)


def prime_feeds() -> None:
    """Feed polling's series at zero (it runs where page verification runs)."""
    families = shared_families()
    for outcome in FEED_OUTCOMES:
        families.feed_polls.labels(outcome=outcome)
    for reason in FEED_FAILURES:
        families.feed_failures.labels(reason=reason)
    for outcome in FEED_ITEM_OUTCOMES:
        families.feed_items.labels(outcome=outcome)


def prime_redis_ops(ops: Iterable[str]) -> None:
    """Error series of every kind at zero for `ops`; other operations get theirs with
    their first error."""
    families = shared_families()
    for op in ops:
        for kind in REDIS_ERROR_KINDS:
            families.redis_errors.labels(op=op, kind=kind)


# -- HTTP instrumentation ---------------------------------------------------------------
_RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([A-Za-z_][A-Za-z0-9_]*)>")


@cache  # the argument is a URL rule, a bounded set
def route_label(rule: str) -> str:
    """A werkzeug rule in the OpenAPI document's path style:
    "/api/v1/articles/<eid:article_id>" -> "/api/v1/articles/{article_id}"."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def request_started() -> None:
    # A scrape counting itself would never let the gauge read 0 on an idle server.
    if request.endpoint == "metrics.metrics_endpoint":
        return
    g.metrics_live = True
    app_families().http_in_progress.inc()


def request_answered(status: int, route: str, method: str, endpoint: str | None,
                     seconds: float | None) -> None:
    """Count and time a response; `route` is the route label ("unmatched" without one)."""
    if method not in HTTP_METHODS:
        method = "other"
    families = app_families()
    families.http_requests.labels(route, method, f"{status // 100}xx").inc()
    if seconds is not None:
        families.http_duration.labels(route).observe(seconds)
    kind = VOTE_ENDPOINTS.get(endpoint or "")
    if kind and method in ("PUT", "DELETE", "POST") and not g.pop("vote_counted", False):
        reason = g.get("refusal_reason")
        if reason:
            vote_rejected(kind, reason)


def request_refused(status: int, method: str) -> None:
    """A request the HTTP server refused before the app saw it (engage.server): counted
    under the route "refused", since it never matched one."""
    request_answered(status, "refused", method, None, None)


def request_ended() -> None:
    # teardown runs even when no response was made, so the gauge cannot leak upwards.
    if g.pop("metrics_live", False):
        app_families().http_in_progress.dec()


def init_app(app: Flask) -> None:
    """The serving role's series at zero. The app factory's first hooks (shared with
    the request log) call `request_started`, `request_answered` and `request_ended`."""
    prime_app()
    shared_families()


# -- rendering -----------------------------------------------------------------------------
class _Probe:
    """Scrape-time facts that are not counters: whether Redis answers now."""

    def __init__(self, redis_up: Callable[[], bool]) -> None:
        self.redis_up = redis_up

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("engage_redis_up", "1 when Redis answered a ping at scrape.")
        family.add_metric([], 1.0 if self.redis_up() else 0.0)
        return [family]


def render(redis_up: Callable[[], bool]) -> bytes:
    """The serving role's text exposition: this process's, or every worker's in
    multiprocess mode (the directory holds only serving processes' files)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = app_registry()
    probe = CollectorRegistry()
    probe.register(_Probe(redis_up))
    return generate_latest(registry) + generate_latest(probe)


def serve_worker_metrics(host: str, port: int) -> None:
    """`engage worker`'s own /metrics listener: the worker role's families only."""
    from prometheus_client import start_http_server

    prime_worker()
    shared_families()
    start_http_server(port, addr=host, registry=worker_registry())
