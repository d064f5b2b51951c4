"""Metric definitions (bounded labels only), request instrumentation and rendering.

Labels never carry ids or raw paths: `kind` is reaction|poll, `reason` is one of
REJECT_REASONS (votes) or LINK_REFUSALS (links), routes are URL rule templates in the
OpenAPI document's style ("/api/v1/articles/{article_id}/reactions"; "unmatched" when
no rule matched), methods come from a fixed list, statuses are classes (2xx..5xx), Redis
`op` is a script name, "pipeline" or a command name, process metrics carry a role and a
slot (below).

Each process role exports its own families and no one else's: the serving processes
(`app_registry`) the HTTP, vote and link families; `engage worker` (`worker_registry`)
the webhook families; both the Redis, aggregates and process families and
`engage_build_info` (the aggregates run in the worker and beside `engage serve`). A
role's families are made the first time that role uses them, so a process never writes
another role's series, not even at zero.

Series that would otherwise appear only with the first failure (5xx answers, Redis
errors, rejected votes, failed webhook deliveries) are made at zero when the role starts
(`prime`, `prime_routes`, `prime_redis_ops`), so `rate()` and dashboards see them at once.

Under granian or gunicorn every worker is its own process, so its counters live in its
own memory. With `PROMETHEUS_MULTIPROC_DIR` set (`engage serve` and gunicorn.conf.py set
it), prometheus client writes each process's values to files in that directory and a
scrape sums them, so any worker answers for all of them and a dead worker's counts stay
counted. The variable must be set before prometheus_client is first imported.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
from collections.abc import Callable, Iterable
from functools import cache, partial
from typing import IO

from flask import Flask, g, has_request_context
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
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REJECT_REASONS = ("duplicate", "throttled", "closed", "invalid", "unknown", "unavailable")
VOTE_KINDS = ("reaction", "poll")
LINK_EVENT_NAMES = ("click", "impression")
LINK_REFUSALS = ("click_duplicate", "click_throttled", "click_bot", "click_prefetch",
                 "impression_over_cap")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WEBHOOK_OUTCOMES = ("delivered", "failed", "dead", "dropped")
REDIS_ERROR_KINDS = ("connection", "timeout", "response", "other")

# Few buckets on purpose: every bucket is one series per route.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.025, 0.1, 0.5)
WEBHOOK_BUCKETS = (0.01, 0.05, 0.25, 1.0, 5.0)


class AppFamilies:
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

    def collectors(self) -> list[Collector]:
        return list(vars(self).values())


class WorkerFamilies:
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

    def collectors(self) -> list[Collector]:
        return list(vars(self).values())


class SharedFamilies:
    """Families every role exports: Redis operations, the aggregates and the build."""

    def __init__(self) -> None:
        self.redis_duration = Histogram(
            "engage_redis_command_duration_seconds",
            "Time of one logical Redis operation (a script, a pipeline or a command), "
            "retries included.", ["op"], buckets=REDIS_BUCKETS, registry=None,
        )
        self.redis_errors = Counter(
            "engage_redis_errors", "Redis operations that failed, by operation and error kind.",
            ["op", "kind"], registry=None,
        )
        self.aggregate_events = Counter(
            "engage_aggregate_events",
            "Stream events applied to the rankings and section figures.", registry=None,
        )
        self.build_info = Gauge(
            "engage_build_info", "Always 1; the labels say which engage and Python run.",
            ["version", "python"], multiprocess_mode="max", registry=None,
        )

    def collectors(self) -> list[Collector]:
        return list(vars(self).values())


# Made on first use, each once per process (a forked worker keeps its parent's objects;
# prometheus client moves their values to the child's own files).
@cache
def app_families() -> AppFamilies:
    disable_created_metrics()  # `_created` samples double the series for no use
    return AppFamilies()


@cache
def worker_families() -> WorkerFamilies:
    disable_created_metrics()
    return WorkerFamilies()


@cache
def shared_families() -> SharedFamilies:
    disable_created_metrics()
    families = SharedFamilies()
    families.build_info.labels(version=_version(), python=platform.python_version()).set(1)
    return families


@cache
def app_registry() -> CollectorRegistry:
    """What one serving process exports when there is no multiprocess directory."""
    registry = CollectorRegistry()
    for collector in (*app_families().collectors(), *shared_families().collectors()):
        registry.register(collector)
    registry.register(ProcessMetrics("app"))
    return registry


@cache
def worker_registry() -> CollectorRegistry:
    """What `engage worker` exports (one process, no multiprocess directory)."""
    registry = CollectorRegistry()
    for collector in (*worker_families().collectors(), *shared_families().collectors()):
        registry.register(collector)
    registry.register(ProcessMetrics("worker"))
    return registry


# Vote views report what a vote did (`vote_outcome`); every refusal, from the schema,
# the limiter, the store or a Redis outage, is counted under the reason its error
# answer recorded (engage.errors).
VOTE_ENDPOINTS = {"reactions.MyReaction": "reaction", "polls.MyPollVote": "poll"}


def _counted() -> None:
    if has_request_context():
        g.vote_counted = True


def vote_accepted(kind: str) -> None:
    app_families().votes_accepted.labels(kind).inc()
    _counted()


def vote_rejected(kind: str, reason: str) -> None:
    app_families().votes_rejected.labels(
        kind, reason if reason in REJECT_REASONS else "invalid").inc()
    _counted()


def vote_outcome(kind: str, changed: bool) -> None:
    """An answered vote: it changed something, or repeated what the reader had."""
    if changed:
        vote_accepted(kind)
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


def redis_observed(op: str, seconds: float, error: str | None = None) -> None:
    """One logical Redis operation; `error` is one of REDIS_ERROR_KINDS or None."""
    families = shared_families()
    families.redis_duration.labels(op).observe(seconds)
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


def prime_routes(app: Flask) -> None:
    """A 5xx series at zero for every route and method the app serves (a bounded set:
    the URL map), so an error-rate ratio is 0, not empty, until the first failure."""
    families = app_families()
    for rule in app.url_map.iter_rules():
        # HEAD and OPTIONS are werkzeug's automatic additions; they fail with the rule.
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            families.http_requests.labels(route_label(rule.rule), method, "5xx")


def prime_worker() -> None:
    """The worker role's known label sets at zero."""
    families = worker_families()
    for outcome in WEBHOOK_OUTCOMES:
        families.deliveries.labels(outcome=outcome)


def prime_redis_ops(ops: Iterable[str]) -> None:
    """Error series at zero for the operations every request path runs (scripts,
    pipelines); plain commands get theirs with their first error."""
    families = shared_families()
    for op in ops:
        for kind in REDIS_ERROR_KINDS:
            families.redis_errors.labels(op=op, kind=kind)


def _version() -> str:
    from engage import __version__

    return __version__


# -- HTTP instrumentation ---------------------------------------------------------------
_RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([A-Za-z_][A-Za-z0-9_]*)>")


@cache  # the argument is a URL rule, a bounded set
def route_label(rule: str) -> str:
    """A werkzeug rule in the OpenAPI document's path style:
    "/api/v1/articles/<eid:article_id>" -> "/api/v1/articles/{article_id}"."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def request_started() -> None:
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
    if kind and method in ("PUT", "DELETE") and not g.pop("vote_counted", False):
        reason = g.get("refusal_reason")
        if reason:
            vote_rejected(kind, reason)


def request_refused(status: int, method: str) -> None:
    """A request the HTTP server refused before the app saw it (engage.server): counted
    under the route "refused", since it never matched one."""
    if method not in HTTP_METHODS:
        method = "other"
    app_families().http_requests.labels("refused", method, f"{status // 100}xx").inc()


def request_ended() -> None:
    # teardown runs even when no response was made, so the gauge cannot leak upwards.
    if g.pop("metrics_live", False):
        app_families().http_in_progress.dec()


def init_app(app: Flask) -> None:
    """The serving role's series at zero, routes included, and this process's slot;
    called once the app has all its routes. The app factory's first hooks (shared with
    the request log) call `request_started`, `request_answered` and `request_ended`."""
    prime_app()
    prime_routes(app)
    shared_families()
    claim_slot("app")


# -- process metrics -----------------------------------------------------------------------
# prometheus client's own process metrics (process_*) describe the process that answers
# the scrape only, and are left out in multiprocess mode. engage exports
# engage_process_* for every process instead, labelled by role ("server": the parent of
# `engage serve`; "app": a serving worker; "worker": `engage worker`) and by slot: the
# lowest number no live process of that role holds. Not the pid: a server replaces dead
# workers (and gunicorn's max_requests recycles them), so pids would add series without
# end; slots stay below the number of processes alive at once (workers, plus one while
# a replacement starts). A slot is a file in the multiprocess directory that its process
# holds an exclusive lock on; the kernel drops the lock when the process exits, however
# it exits, so the next process of that role takes the slot over.
_SLOT_FILE = re.compile(r"process-([a-z]+)-(\d+)\.lock")
_slot: tuple[int, str, IO[str]] | None = None  # pid, role, the locked file


def claim_slot(role: str) -> None:
    """Take this process's slot (multiprocess mode only); the first claim of a process
    stands, so the parent of `engage serve` stays "server" when it builds its app."""
    global _slot
    path = multiprocess_dir()
    if path is None or (_slot is not None and _slot[0] == os.getpid()):
        return
    number = 0
    while True:
        handle = open(os.path.join(path, f"process-{role}-{number}.lock"), "a+")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            number += 1
            continue
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        _slot = (os.getpid(), role, handle)  # kept open: closing it would drop the lock
        return


def _slot_holders(path: str) -> list[tuple[str, str, int]]:
    """(role, slot, pid) of every live process holding a slot in `path`."""
    holders = []
    for name in sorted(os.listdir(path)):
        match = _SLOT_FILE.fullmatch(name)
        if not match:
            continue
        try:
            with open(os.path.join(path, name)) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # held: its process is alive
                    pid = handle.read().strip()
                    if pid.isdigit():
                        holders.append((match.group(1), match.group(2), int(pid)))
        except FileNotFoundError:
            continue
    return holders


class ProcessMetrics:
    """engage_process_* (memory, CPU, open files...) of every process of this role, or
    of every slot holder in the multiprocess directory, read from /proc at scrape time."""

    def __init__(self, role: str) -> None:
        self.role = role

    def collect(self) -> list[Metric]:
        path = multiprocess_dir()
        holders = (_slot_holders(path) if path
                   else [(self.role, "0", os.getpid())])
        merged: dict[str, Metric] = {}
        for role, slot, pid in holders:
            reader = ProcessCollector(namespace="engage", pid=partial(str, pid),
                                      registry=None)
            for family in reader.collect():
                out = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    out.add_sample(sample.name, {"role": role, "slot": slot}, sample.value)
        return list(merged.values())


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
    """The serving role's text exposition: this process's, or every worker's in
    multiprocess mode (the directory holds only serving processes' files)."""
    extra = CollectorRegistry()
    extra.register(_Probe(redis_up))
    if path := multiprocess_dir():
        forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        extra.register(ProcessMetrics("app"))
        return generate_latest(registry) + generate_latest(extra)
    return generate_latest(app_registry()) + generate_latest(extra)


def serve_worker_metrics(host: str, port: int) -> None:
    """`engage worker`'s own /metrics listener: the worker role's families only."""
    from prometheus_client import start_http_server

    prime_worker()
    shared_families()
    start_http_server(port, addr=host, registry=worker_registry())
