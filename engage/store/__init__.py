"""Storage: the only package that imports redis.

`init_app(app)` connects once per app (a pooled client) and registers the Lua scripts.
Views reach the store through `get_store()`. The store raises its refusals as the errors
they are answered with (`engage.errors.REFUSALS`); an outage is one of `UNAVAILABLE`
(engage/errors.py answers it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from flask import Flask, current_app
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from engage.store import cluster, scripts
from engage.store.embedded import EmbeddedRedis
from engage.store.keys import Keys

EXTENSION = "engage.store"

# Errors that mean "Redis is not there right now", as opposed to a bug in a command.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    *cluster.UNAVAILABLE,
)


# Anonymous reads (counts, and the widget's view of an article) are answered from a
# per-process cache for at most this long, so a process may show counts this much older
# than Redis (an HTTP cache may already keep them CACHE_MAX_AGE). It is a speed trick
# that earns its place: without the Redis round trip, bench/run.py --quick measured 1.1
# to 1.8 times the anonymous reads per second and 1.5 to 3 times the batches of 100
# (bench/README.md, 2026-12-01), and the widget bundle's CPU per request fell to a
# fraction (bench/README.md, 2026-12-05).
COUNTS_CACHE_SECONDS = 1.0
COUNTS_CACHE_ARTICLES = 10_000


class ReadCache:
    """Article id -> an anonymous read of it, kept COUNTS_CACHE_SECONDS by `timer`, for at
    most `size` articles (the oldest dropped first). A plain dict, not cachetools' TTLCache,
    whose lookups were most of a cached batch's own cost (bench/profile_hot.py). A lookup
    is atomic: only writes, which a worker's threads share, take the lock."""

    def __init__(self, size: int, timer: Callable[[], float]) -> None:
        self.size = size
        self.timer = timer
        self.entries: dict[str, tuple[float, Any]] = {}  # id -> (kept until, read), oldest first
        self.lock = threading.Lock()

    def get_many(self, article_ids: Iterable[str]) -> dict[str, Any]:
        """The kept reads of these articles, where still fresh."""
        now, entries = self.timer(), self.entries
        return {aid: entry[1] for aid in article_ids
                if (entry := entries.get(aid)) is not None and now < entry[0]}

    def put_many(self, reads: dict[str, Any]) -> None:
        until = self.timer() + COUNTS_CACHE_SECONDS
        with self.lock:
            for aid, read in reads.items():
                self.entries.pop(aid, None)  # inserted again last: the oldest stay first
                self.entries[aid] = (until, read)
            while len(self.entries) > self.size:
                del self.entries[next(iter(self.entries))]

    def pop(self, article_id: str) -> None:
        with self.lock:
            self.entries.pop(article_id, None)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Revocations:
    """This process's copy of `keys.revocations`: the P:rv digest (cut) -> its value and
    the entry's epoch ms, read from `last_id` on when `read_at` (by `Store.timer`) is a
    second old; kept and read by store/readers.py."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, int]] = {}
        self.last_id = "0-0"
        self.read_at = float("-inf")
        self.pruned_at = float("-inf")
        self.lock = threading.Lock()


class Store:
    """One pooled Redis client, the key builders, the registered scripts, the clock and
    the caches of anonymous reads.

    Whatever engage judges by its own time (a poll's `closes_at`, hour and day buckets,
    the address hash's day, stream trimming) comes from `now()`, so a test can hand in
    a clock it moves instead of waiting on the wall. Redis keeps its own time for TTLs.
    How old a cached count is goes by `timer` (monotonic seconds: a wall clock set back
    must not keep an entry), which a test can replace the same way.
    """

    def __init__(
        self, client: Any, config: dict[str, Any], clock: Callable[[], datetime] = utc_now,
        timer: Callable[[], float] = time.monotonic,
        counts_cache_articles: int = COUNTS_CACHE_ARTICLES,
    ) -> None:
        self.redis = client
        self.config = config
        self.clock = clock
        self.timer = timer
        self.keys = Keys(config["REDIS_PREFIX"])
        self.scripts = {name: client.register_script(src) for name, src in scripts.ALL.items()}
        # An article's anonymous Reactions (store/reactions.py), and what the widget shows
        # anyone of it (store/widget.py).
        self.counts_cache = ReadCache(counts_cache_articles, lambda: self.timer())
        self.widget_cache = ReadCache(counts_cache_articles, lambda: self.timer())
        # The sites, under "", and an article's site, under its id (store/sites.py).
        self.sites_cache = ReadCache(counts_cache_articles, lambda: self.timer())
        # The renewals and erasures this process has read (store/readers.py).
        self.revocations = Revocations()

    def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self.scripts[name](keys=keys, args=args)

    def forget(self, article_id: str) -> None:
        """Drop the article from this process's caches after a write that changes what
        anyone sees of it, so this process's next read shows the write (others within
        COUNTS_CACHE_SECONDS)."""
        self.counts_cache.pop(article_id)
        self.widget_cache.pop(article_id)
        self.sites_cache.pop(article_id)

    # -- time helpers shared by the write paths -----------------------------------
    def now(self) -> datetime:
        return self.clock()

    def min_event_id(self, now: datetime) -> str:
        """Oldest stream id to keep: entries older than the retention are trimmed."""
        oldest = now - timedelta(days=int(self.config["EVENT_RETENTION_DAYS"]))
        return str(int(oldest.timestamp() * 1000))

    def bucket_ttls(self) -> tuple[int, int]:
        return (
            int(self.config["HOUR_BUCKET_DAYS"]) * 86400,
            int(self.config["DAY_BUCKET_DAYS"]) * 86400,
        )

    def close(self) -> None:
        self.redis.close()


def make_client(url: str, config: dict[str, Any]) -> Any:
    """A pooled client with timeouts; retries only errors that are safe to retry.

    A refused or reset connection is retried (every write is idempotent per reader),
    a timeout is not, so a black-holed Redis costs one socket timeout, not several.
    A `redis+cluster://` URL gets a RedisCluster client instead (see store/cluster.py).
    """
    if cluster.is_cluster_url(url):
        return cluster.make_cluster_client(url, config)
    # Imported here: it brings the metrics, which set up their multiprocess files on
    # import; a process that only needs the store's names must not.
    from engage.store.instrumented import InstrumentedRedis

    retry = Retry(
        ExponentialBackoff(cap=0.2, base=0.02),
        int(config["REDIS_RETRIES"]),
        supported_errors=(redis.ConnectionError,),
    )
    return InstrumentedRedis.from_url(
        url,
        decode_responses=True,
        socket_timeout=float(config["REDIS_SOCKET_TIMEOUT"]),
        socket_connect_timeout=float(config["REDIS_CONNECT_TIMEOUT"]),
        retry=retry,
        retry_on_error=[redis.ConnectionError],
        max_connections=int(config["REDIS_MAX_CONNECTIONS"]),
        health_check_interval=30,
    )


def resolve_url(config: dict[str, Any]) -> str:
    """The configured URL, or the embedded server's (started if needed)."""
    url = config.get("REDIS_URL")
    if url:
        return str(url)
    return EmbeddedRedis(config["DATA_DIR"]).ensure_running()


def get_store() -> Store:
    store: Store = current_app.extensions[EXTENSION]
    return store


def init_app(app: Flask) -> Store:
    url = resolve_url(app.config)
    app.config["REDIS_URL_RESOLVED"] = url
    store = Store(make_client(url, app.config), app.config)
    from engage.store import instrumented

    instrumented.prime()
    app.extensions[EXTENSION] = store
    return store
