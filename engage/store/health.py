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
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from engage.store import UNAVAILABLE, Store, cluster

_lock = threading.Lock()


def _probe_client(store: Store) -> Any:
    client = getattr(store, "probe_client", None)
    if client is None:
        with _lock:
            client = getattr(store, "probe_client", None)
            if client is None:
                timeout = float(store.config.get("READY_TIMEOUT", 0.25))
                if cluster.is_cluster_url(store.config["REDIS_URL_RESOLVED"]):
                    client = _probe_cluster(store, timeout)
                    store.probe_client = client  # type: ignore[attr-defined]
                    return client
                client = redis.Redis.from_url(
                    store.config["REDIS_URL_RESOLVED"],
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 0),
                    max_connections=4,
                )
                store.probe_client = client  # type: ignore[attr-defined]
    return client


def _probe_cluster(store: Store, timeout: float) -> Any:
    """A cluster probe: same short timeouts, no retries (store/cluster.py)."""
    config = {**store.config, "REDIS_SOCKET_TIMEOUT": timeout, "REDIS_CONNECT_TIMEOUT": timeout,
              "REDIS_RETRIES": 0, "REDIS_CLUSTER_RETRIES": 0, "REDIS_MAX_CONNECTIONS": 4}
    return cluster.make_cluster_client(store.config["REDIS_URL_RESOLVED"], config)


def redis_answers(store: Store) -> bool:
    try:
        return bool(_probe_client(store).ping())
    except (*UNAVAILABLE, redis.RedisError, RedisClusterException):
        return False
