"""`engage worker`: delivers the event streams to registered webhooks, judges and
delivers the alerts and the daily digest (engage/alerts.py), and keeps the
cross-article aggregates (`run_aggregates`, also started by `engage serve`).

Each pass: read new entries of every event stream through the consumer group, POST
each entry to every webhook whose `events` match it, then acknowledge the entry. A
failed delivery does not hold the stream: it goes to the retry set (in Redis) with
its due time, and the entry is acknowledged once every matching webhook has either
received it or has a retry scheduled. So a worker killed at any point loses nothing:
unacknowledged entries are read again (its own, on restart) or claimed by another
worker after WEBHOOK_CLAIM_IDLE, and leased retries come back when the lease ends.
The price is an occasional duplicate, which carries the same idempotency id.

Body: {"id": "<webhook id>:<a|p>:<owner id>:<entry id>", "type", "occurred_at", "data"}
signed as `X-Engage-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from functools import partial
from typing import Any

import urllib3

from engage import __version__, alerts, destinations, metrics
from engage.store import UNAVAILABLE, Store, aggregates, events, polls, readers, sites, webhooks

log = logging.getLogger("engage.worker")

STREAM_BATCH = 100      # streams per read (one pipeline)
ENTRIES_PER_STREAM = 50  # entries per stream per read
STREAM_REFRESH = 2.0    # seconds between looks for new articles and polls

SIGNATURE_HEADER = "X-Engage-Signature"
DELIVERY_HEADER = "X-Engage-Delivery"
TIMESTAMP_HEADER = "X-Engage-Timestamp"

Sender = Callable[[str, bytes, dict[str, str], float], str | None]
Job = tuple[dict[str, Any], dict[str, Any], str | None]  # delivery, webhook, retry member


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def http_send(url: str, body: bytes, headers: dict[str, str], timeout: float,
              rules: destinations.Rules = destinations.DEFAULT_RULES) -> str | None:
    """POST to the address the URL's host resolves to now, once checked to be public;
    None on a 2xx answer, else a short, bounded description of the failure. A redirect
    is a failure: following it would re-send the body elsewhere."""
    try:
        address, port = destinations.resolve(url, rules)
    except destinations.RefusedDestination:
        return "refused destination"
    except (OSError, UnicodeError) as exc:
        return type(exc).__name__
    parts = urllib.parse.urlsplit(url)
    host_header = parts.netloc.rpartition("@")[2]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Connect to the checked address; TLS still verifies the URL's own host name.
    pool: urllib3.HTTPConnectionPool = (
        urllib3.HTTPSConnectionPool(address, port, server_hostname=parts.hostname,
                                    timeout=timeout, retries=False, maxsize=1)
        if parts.scheme == "https"
        else urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False,
                                        maxsize=1)
    )
    try:
        with pool:
            response = pool.urlopen("POST", target, body=body,
                                    headers={**headers, "Host": host_header},
                                    redirect=False, preload_content=False)
            response.read(1024)
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        return type(getattr(exc, "reason", None) or exc).__name__
    if not 200 <= response.status < 300:
        return f"http {response.status}"
    return None


def payload(hook_id: str, stream: str, entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    occurred = datetime.fromtimestamp(int(entry_id.split("-", 1)[0]) / 1000, UTC)
    return {
        "id": f"{hook_id}:{webhooks.owner_tag(stream)}:{entry_id}",
        "type": fields.get("type", ""),
        "occurred_at": occurred.isoformat(timespec="milliseconds"),
        "data": {k: v for k, v in fields.items() if k != "type"},
    }


class Worker:
    def __init__(self, store: Store, consumer: str, send: Sender | None = None) -> None:
        config = store.config
        self.store = store
        self.consumer = consumer
        self.send = send or partial(http_send, rules=destinations.rules(config))
        self.timeout = float(config["WEBHOOK_TIMEOUT"])
        self.max_attempts = int(config["WEBHOOK_MAX_ATTEMPTS"])
        self.retry_base = float(config["WEBHOOK_RETRY_BASE"])
        self.retry_max = float(config["WEBHOOK_RETRY_MAX"])
        self.claim_idle_ms = int(float(config["WEBHOOK_CLAIM_IDLE"]) * 1000)
        self.poll = float(config["WORKER_POLL"])
        # Deliveries run in parallel so one slow endpoint does not hold up the others.
        self.concurrency = max(1, int(config["WEBHOOK_CONCURRENCY"]))
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook")
        self.retry_batch = 2 * self.concurrency
        self.known: set[str] = set()
        self.streams: list[str] = []
        self.streams_at = 0.0
        self.claimed_at = 0.0
        self.recovered = False
        metrics.prime_worker()  # every outcome at zero before the first delivery
        self.alerts = alerts.Alerter(store, self)

    # -- one pass ---------------------------------------------------------------------
    def step(self) -> int:
        """Do what is due now; returns how many deliveries and entries it handled."""
        done = self.alerts.step()
        hooks = webhooks.list_all(self.store)
        done += self._retries({h["id"]: h for h in hooks})
        if hooks:
            self._refresh_streams(hooks)
            batches = [
                self.streams[i:i + STREAM_BATCH] for i in range(0, len(self.streams), STREAM_BATCH)
            ]
            if not self.recovered:
                # Our own entries read before a restart and never acknowledged.
                for batch in batches:
                    while entries := self._read(batch, pending=True):
                        done += self._handle(entries, hooks)
                self.recovered = True
            now = time.monotonic()
            if now - self.claimed_at >= self.claim_idle_ms / 2000:
                self.claimed_at = now
                for batch in batches:
                    done += self._handle(
                        webhooks.claim_idle(self.store, self.consumer, batch,
                                            self.claim_idle_ms, ENTRIES_PER_STREAM),
                        hooks,
                    )
            for batch in batches:
                done += self._handle(self._read(batch), hooks)
        metrics.webhook_retry_queue(webhooks.retry_count(self.store))
        return done

    def run(self, stop: threading.Event) -> None:
        log.info("worker %s started", self.consumer)
        while not stop.is_set():
            try:
                busy = self.step()
            except UNAVAILABLE as exc:
                log.warning("redis unavailable: %s", exc)
                stop.wait(1.0)
                continue
            if not busy:
                stop.wait(self.poll)
        self.pool.shutdown(wait=True)
        log.info("worker %s stopped", self.consumer)

    # -- streams ------------------------------------------------------------------------
    def _refresh_streams(self, hooks: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        if self.streams and now - self.streams_at < STREAM_REFRESH:
            return
        self.streams_at = now
        every = events.stream_keys(self.store)
        fresh = [key for key in every if key not in self.known]
        if fresh:
            oldest = min(int(h["created_ms"]) for h in hooks)
            for i in range(0, len(fresh), 500):
                self.known.update(webhooks.ensure_groups(self.store, fresh[i:i + 500], oldest))
        # Only streams that carry the group: reading one without it fails the batch.
        self.streams = [key for key in every if key in self.known]

    def _read(self, batch: list[str], pending: bool = False) -> list[webhooks.Entry]:
        try:
            return webhooks.read(self.store, self.consumer, batch, ENTRIES_PER_STREAM, pending)
        except Exception as exc:
            if "NOGROUP" not in str(exc):
                raise
            # A stream was deleted and recreated (or trimmed away): give it its group back.
            self.known.difference_update(batch)
            self.streams_at = 0.0
            return []

    def _handle(self, entries: list[webhooks.Entry], hooks: list[dict[str, Any]]) -> int:
        # Acknowledge in small chunks: a worker killed mid-batch then repeats only the
        # chunk it was sending, not everything it had read.
        chunk = 4 * self.concurrency
        for start in range(0, len(entries), chunk):
            part = entries[start:start + chunk]
            owners = self._owners(part, hooks)
            self._run([job for entry in part for job in self._jobs(entry, hooks, owners)])
            webhooks.ack(self.store, part)
            metrics.webhook_events(len(part))
        return len(entries)

    def _owners(self, entries: list[webhooks.Entry], hooks: list[dict[str, Any]]
                ) -> dict[str, str]:
        """Article id -> its site, for the webhooks bound to a site (none bound: no look
        up); `""` (a poll of no article) and an unknown article are the default site's."""
        if not any(hook.get("site") for hook in hooks):
            return {}
        default = str(self.store.config["DEFAULT_SITE"])
        found = sites.of_articles(self.store, sorted(
            {a for _, _, fields in entries if (a := fields.get("article"))}))
        return {"": default} | {a: site or default for a, site in found.items()}

    @staticmethod
    def _jobs(entry: webhooks.Entry, hooks: list[dict[str, Any]],
              owners: dict[str, str]) -> list[Job]:
        stream, entry_id, fields = entry
        millis = int(entry_id.split("-", 1)[0])
        kind = fields.get("type", "")
        jobs: list[Job] = []
        for hook in hooks:
            if millis < int(hook["created_ms"]) or not webhooks.matches(hook["events"], kind):
                continue
            if hook.get("site") and owners.get(fields.get("article", "")) != hook["site"]:
                continue
            event = payload(hook["id"], stream, entry_id, fields)
            jobs.append((webhooks.delivery(hook["id"], event), hook, None))
        return jobs

    # -- deliveries -----------------------------------------------------------------------
    def _run(self, jobs: list[Job]) -> None:
        """Attempt deliveries in parallel; an error (Redis gone) is raised once all ended,
        so the caller acknowledges nothing and the entries are read again."""
        futures = [self.pool.submit(self._attempt, *job) for job in jobs]
        wait(futures)
        for future in futures:
            future.result()

    def backoff(self, attempts: int) -> float:
        return float(min(self.retry_base * 2 ** (attempts - 1), self.retry_max))

    def _attempt(self, delivery: dict[str, Any], hook: dict[str, Any], member: str | None) -> None:
        delivery["attempts"] += 1
        body = delivery["body"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"engage-webhooks/{__version__}",
            SIGNATURE_HEADER: sign(hook["secret"], body),
            DELIVERY_HEADER: delivery["delivery"],
            TIMESTAMP_HEADER: str(int(time.time())),
            "X-Engage-Attempt": str(delivery["attempts"]),
        }
        started = time.perf_counter()
        error = self.send(hook["url"], body, headers, self.timeout)
        seconds = time.perf_counter() - started
        outcome = ("delivered" if error is None else
                   "dead" if delivery["attempts"] >= self.max_attempts else "failed")
        metrics.webhook_attempt(outcome, seconds)
        webhooks.record_attempt(self.store, delivery, outcome, error)
        if error is None:
            if member is not None:
                webhooks.finish_retry(self.store, member)
        elif outcome == "dead":
            log.warning("webhook %s gave up on %s: %s", hook["id"], delivery["delivery"], error)
            webhooks.dead_letter(self.store, delivery, error, member)
        else:
            due = time.time() + self.backoff(delivery["attempts"])
            webhooks.schedule_retry(self.store, delivery, due, replaces=member)

    def _retries(self, hooks: dict[str, dict[str, Any]]) -> int:
        now = time.time()
        # Leased for longer than the batch can take, so only a dead worker's lease ends.
        rounds = -(-self.retry_batch // self.concurrency)
        lease = now + (rounds + 1) * self.timeout + 1
        members = webhooks.claim_due(self.store, now, lease, self.retry_batch)
        jobs: list[Job] = []
        for member in members:
            delivery = json.loads(member)
            hook = hooks.get(delivery["webhook"])
            if hook is None:
                metrics.webhook_attempt("dropped")  # the webhook was deleted meanwhile
                webhooks.finish_retry(self.store, member)
                continue
            jobs.append((delivery, hook, member))
        self._run(jobs)
        return len(members)


# -- aggregates and poll deadlines --------------------------------------------------------
AGGREGATE_INTERVAL = 1.0  # seconds between passes when nothing was new
POLL_DEADLINE_INTERVAL = 2.0  # seconds between looks for polls whose closes_at passed
RETENTION_INTERVAL = 3600.0  # seconds between looks for readers past READER_RETENTION_DAYS


def run_steps(name: str, step: Callable[[], int], stop: threading.Event,
              interval: float) -> None:
    """The loop of every background job: call `step` until `stop` is set, waiting
    `interval` after a pass that found nothing to do (`step` returned 0) or failed, and
    a second while Redis is unavailable."""
    log.info("%s started", name)
    while not stop.is_set():
        try:
            done = step()
        except UNAVAILABLE as exc:
            log.warning("redis unavailable: %s", exc)
            stop.wait(1.0)
            continue
        except Exception:
            log.exception("%s pass failed", name)
            stop.wait(interval)
            continue
        if not done:
            stop.wait(interval)
    log.info("%s stopped", name)


def in_thread(name: str, run: Callable[[Store, threading.Event], None], store: Store,
              stop: threading.Event | None = None) -> tuple[threading.Thread, threading.Event]:
    """`run(store, stop)` in a daemon thread; set the returned event to stop it."""
    stop = stop or threading.Event()
    thread = threading.Thread(target=run, args=(store, stop), daemon=True,
                              name=f"engage-{name}")
    thread.start()
    return thread, stop


def run_aggregates(store: Store, stop: threading.Event,
                   interval: float = AGGREGATE_INTERVAL) -> None:
    """Keep the rankings, section and site figures from the event streams, and record
    `poll.closed` when a deadline passes, and unlink readers past their retention, until
    `stop` is set. Safe to run in several processes at once (each entry is applied once;
    a deadline is recorded once; unlinking a reader twice finds nothing the second time)."""
    aggregator = aggregates.Aggregator(store)
    last = {"deadlines": 0.0, "retention": -RETENTION_INTERVAL}  # the first pass looks at once

    def step() -> int:
        if time.monotonic() - last["deadlines"] >= POLL_DEADLINE_INTERVAL:
            last["deadlines"] = time.monotonic()
            polls.close_due(store)
        if time.monotonic() - last["retention"] >= RETENTION_INTERVAL:
            last["retention"] = time.monotonic()
            while readers.forget_inactive(store) == readers.FORGET_BATCH:
                pass
        applied = aggregator.step()
        metrics.aggregate_events(applied)
        return applied

    run_steps("aggregates", step, stop, interval)


def start_aggregates(
    store: Store, stop: threading.Event | None = None
) -> tuple[threading.Thread, threading.Event]:
    """`run_aggregates` in a daemon thread; set the returned event to stop it."""
    return in_thread("aggregates", run_aggregates, store, stop)
