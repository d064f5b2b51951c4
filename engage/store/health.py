"""A quick "does Redis answer?" for readiness probes and scrapes.

The request client waits up to REDIS_SOCKET_TIMEOUT and retries; a probe must not,
or a load balancer would keep routing to a worker whose Redis is gone. So probes use
their own tiny pool with a short timeout and no retries.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engage.store import UNAVAILABLE, Store

_lock = threading.Lock()


def _probe_client(store: Store) -> Any:
    client = getattr(store, "probe_client", None)
    if client is None:
        with _lock:
            client = getattr(store, "probe_client", None)
            if client is None:
                timeout = float(store.config.get("READY_TIMEOUT", 0.25))
                client = redis.Redis.from_url(
                    store.config["REDIS_URL_RESOLVED"],
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 0),
                    max_connections=4,
                )
                store.probe_client = client  # type: ignore[attr-defined]
    return client


def redis_answers(store: Store) -> bool:
    try:
        return bool(_probe_client(store).ping())
    except (*UNAVAILABLE, redis.RedisError):
        return False
