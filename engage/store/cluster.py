"""Redis Cluster: the URL form and the client.

`ENGAGE_REDIS_URL=redis+cluster://host:port,host:port` (or `rediss+cluster://` for
TLS, optionally `user:password@` before the first host) names a few startup nodes;
redis-py's `RedisCluster` discovers the rest, follows MOVED/ASK and refreshes its slot
map after a failover.

Nothing else changes for a cluster: every script's keys carry one hash tag (see
`keys.py`), and reads that span articles use non-transactional pipelines, which
redis-py splits per node (one round trip per node). Scripts are always called on
their own, never inside a pipeline: redis-py refuses EVALSHA in a cluster pipeline,
and a direct call is what reloads a script after NOSCRIPT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class ClusterURL:
    nodes: list[tuple[str, int]]
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    options: dict[str, str] = field(default_factory=dict)


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


def parse_url(url: str) -> ClusterURL:
    """`redis+cluster://[user:pass@]h1:p1,h2:p2[/0]`; raises ValueError when malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError(f"not a cluster URL (expected {SCHEMES[0]}://host:port,...)")
    rest, _, _query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0")
    username = password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"cluster node {item!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    return ClusterURL(nodes, username, password, scheme.lower().startswith("rediss"))


def make_cluster_client(url: str, config: dict[str, Any]) -> RedisCluster:
    """A `RedisCluster` with the same timeouts as the single-node client.

    redis-py retries on the cluster level (a dropped node triggers a slot-map refresh
    and another try); the attempts are spread over a failover's typical duration.
    """
    parsed = parse_url(url)
    retry = Retry(
        ExponentialBackoff(cap=0.5, base=0.05),
        max(int(config["REDIS_RETRIES"]), int(config.get("REDIS_CLUSTER_RETRIES", 3))),
    )
    extra: dict[str, Any] = {}
    if parsed.ssl:
        extra["ssl"] = True
    # Imported here: instrumented imports the store package, which imports this module.
    from engage.store.instrumented import InstrumentedRedisCluster

    return InstrumentedRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
        decode_responses=True,
        username=parsed.username,
        password=parsed.password,
        socket_timeout=float(config["REDIS_SOCKET_TIMEOUT"]),
        socket_connect_timeout=float(config["REDIS_CONNECT_TIMEOUT"]),
        max_connections=int(config["REDIS_MAX_CONNECTIONS"]),
        retry=retry,
        **extra,
    )


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


# A slot the client's map does not cover (mid-failover) is an outage, not a bug.
UNAVAILABLE = (redis.exceptions.SlotNotCoveredError, redis.exceptions.ClusterError)
