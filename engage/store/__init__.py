"""Storage: the only package that imports redis.

`init_app(app)` connects once per app (a pooled client), registers the Lua scripts and
turns Redis outages into 503s. Views reach the store through `get_store()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from flask import Flask, Response, current_app
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from engage import errors
from engage.store import cluster, scripts
from engage.store.embedded import EmbeddedRedis
from engage.store.instrumented import InstrumentedRedis
from engage.store.keys import Keys
from engage.store.nearcache import NearCache

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


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """One pooled Redis client, the key builders, the registered scripts and the clock.

    Whatever engage judges by its own time (a poll's `closes_at`, hour and day buckets,
    the address hash's day, stream trimming) comes from `now()`, so a test can hand in
    a clock it moves instead of waiting on the wall. Redis keeps its own time for TTLs.
    """

    def __init__(
        self, client: Any, config: dict[str, Any], clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.redis = client
        self.config = config
        self.clock = clock
        self.keys = Keys(config["REDIS_PREFIX"])
        self.scripts = {name: client.register_script(src) for name, src in scripts.ALL.items()}
        self.near = make_near_cache(client, config)

    def register(self, name: str, source: str) -> None:
        """Rooms that add scripts register them here, once, at init."""
        self.scripts[name] = self.redis.register_script(source)

    def run(self, name: str, keys: list[str], args: list[Any], client: Any = None) -> Any:
        return self.scripts[name](keys=keys, args=args, client=client or self.redis)

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

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except UNAVAILABLE:
            return False

    def close(self) -> None:
        if self.near is not None:
            self.near.close()
        self.redis.close()


def make_client(url: str, config: dict[str, Any]) -> Any:
    """A pooled client with timeouts; retries only errors that are safe to retry.

    A refused or reset connection is retried (every write is idempotent per reader),
    a timeout is not, so a black-holed Redis costs one socket timeout, not several.
    A `redis+cluster://` URL gets a RedisCluster client instead (see store/cluster.py).
    """
    if cluster.is_cluster_url(url):
        return cluster.make_cluster_client(url, config)
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


def make_near_cache(client: Any, config: dict[str, Any]) -> NearCache | None:
    """The process's near cache of anonymous reads (store/nearcache.py), when it can
    be kept exact: not on a cluster, and not when NEAR_CACHE_SIZE is 0."""
    size = int(config.get("NEAR_CACHE_SIZE", 0))
    if size <= 0 or not isinstance(client, redis.Redis):
        return None
    return NearCache(client.connection_pool, type(client), size,
                     ttl=float(config["NEAR_CACHE_TTL"]),
                     heartbeat=float(config["NEAR_CACHE_HEARTBEAT"]))


def resolve_url(config: dict[str, Any]) -> str:
    """The configured URL, or the embedded server's (started if needed)."""
    url = config.get("REDIS_URL")
    if url:
        return str(url)
    return EmbeddedRedis(config["DATA_DIR"]).ensure_running()


def get_store() -> Store:
    store: Store = current_app.extensions[EXTENSION]
    return store


def _unavailable(exc: Exception) -> Response:
    current_app.logger.warning("redis unavailable: %s", exc)
    near = get_store().near
    if near is not None:
        near.reset()  # it cannot vouch for anything Redis may have done meanwhile
    return errors.error_response(
        503,
        errors.StorageUnavailable.error_code,
        errors.StorageUnavailable.message,
        headers={"Retry-After": str(current_app.config["RETRY_AFTER"])},
    )


def init_app(app: Flask) -> Store:
    url = resolve_url(app.config)
    app.config["REDIS_URL_RESOLVED"] = url
    store = Store(make_client(url, app.config), app.config)
    app.extensions[EXTENSION] = store
    for exc_type in UNAVAILABLE:
        app.register_error_handler(exc_type, _unavailable)
    return store


def wait_until_ready(store: Store, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.ping():
            return True
        time.sleep(0.05)
    return False
