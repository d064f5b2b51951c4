"""A per-process copy of hot read results that Redis itself keeps exact.

Why: the anonymous count read is engage's most frequent request by far (every page
view of every article with a widget), and most of its cost was the Redis round trip
and redis-py's per-command work, for counts that change far less often than they are
read. Serving repeats from process memory takes both away.

How it stays exact: Redis's server-assisted client-side caching (CLIENT TRACKING,
Redis 6 and later). Each process holds two private connections:

- `fill`: every value the cache keeps was read through it, with tracking on and
  redirected to `listen`, so Redis remembers which keys this process holds;
- `listen`: subscribed to `__redis__:invalidate`, where Redis publishes the name of a
  tracked key as soon as a write changes it, queued before the writer's own reply.

Before every lookup the process drains `listen` without blocking and drops what
changed, so a read never serves a value older than the last write whose notice has
reached this host (microseconds on loopback). And where that cannot be trusted:

- an error on either connection, a flush notice, or any failed store call elsewhere
  in the process (`reset()`) drops everything; the connections are rebuilt on the next
  use, at most once per `REBUILD_AFTER` seconds;
- a PING goes down `listen` every `heartbeat` seconds (when requests come); while an
  answer is overdue by more than that the cache steps aside, so a frozen or cut-off
  Redis gets the same 503s as without the cache after at most two heartbeats (until
  then the counts served are the frozen Redis's own: nothing can change them);
- entries live at most `ttl` seconds, and at most `size` of them (oldest dropped);
- one lock guards it all; a thread that finds the lock taken reads Redis itself
  rather than wait;
- not used on a Redis Cluster (notices come per node) or when `size` is 0.

A caller gets `None` from `read_through` whenever the cache steps aside, and then
reads Redis the ordinary way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

CHANNEL = "__redis__:invalidate"
REBUILD_AFTER = 1.0  # seconds between attempts to rebuild broken connections

# What a private connection takes from the pool's settings: where and how to connect,
# not the pool's own machinery (retry policy, maintenance-notice handlers).
_CONNECTION_SETTINGS = {
    "host", "port", "db", "path", "username", "password", "credential_provider",
    "socket_timeout", "socket_connect_timeout", "socket_keepalive",
    "socket_keepalive_options", "decode_responses", "encoding", "encoding_errors",
}

# load(client, ids) -> {id: (value, keys the value was read from, or None to not keep it)}
Loader = Callable[[Any, list[str]], Mapping[str, tuple[Any, Iterable[str] | None]]]


class NearCache:
    def __init__(self, pool: redis.ConnectionPool, client_class: type[redis.Redis],
                 size: int, ttl: float, heartbeat: float) -> None:
        self.size = size
        self.ttl = ttl
        self.heartbeat = heartbeat
        kwargs = {name: value for name, value in pool.connection_kwargs.items()
                  if name in _CONNECTION_SETTINGS or name.startswith("ssl_")}
        # The cache owns its connections' lifecycles: no silent reconnects (a
        # reconnected `fill` would no longer be tracked) and no health-check PING (it
        # is answered differently on a subscribed connection). RESP2, where notices
        # arrive as ordinary pub/sub messages on `listen` and never among `fill`'s replies.
        kwargs.update(retry=Retry(NoBackoff(), 0), retry_on_error=[], health_check_interval=0,
                      protocol=2)
        self._kwargs = kwargs
        self._connection_class = pool.connection_class
        self._client_class = client_class
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Any, tuple[str, ...]]] = {}
        self._by_key: dict[str, set[str]] = {}
        self._listen: Any = None
        self._fill: Any = None
        self._broken_at = 0.0
        self._ping_sent = 0.0  # monotonic time of the PING not yet answered, or 0
        self._last_ping = 0.0
        _ALL.add(self)

    # -- public -------------------------------------------------------------------
    def read_through(self, ids: list[str], load: Loader) -> dict[str, Any] | None:
        """Values of `ids`, the missing ones loaded by `load` on the tracked connection.

        None when the cache cannot vouch for its contents right now (or another thread
        holds it); the caller then reads Redis itself. Redis errors while loading
        propagate, after the cache has been dropped.
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            now = time.monotonic()
            if not self._ready(now):
                return None
            found: dict[str, Any] = {}
            missing: list[str] = []
            for name in ids:
                entry = self._entries.get(name)
                if entry is not None and entry[0] > now:
                    found[name] = entry[1]
                else:
                    missing.append(name)
            if missing:
                try:
                    loaded = load(self._fill, missing)
                except redis.RedisError:
                    self._break()
                    raise
                for name, (value, keys) in loaded.items():
                    found[name] = value
                    if keys is not None:
                        self._keep(name, value, tuple(keys), now)
            return found
        finally:
            self._lock.release()

    def forget(self, name: str) -> None:
        """Drop one entry now: this process has just changed what it was read from.

        Redis's notice would drop it too, but it travels on another connection and
        may arrive after this process's next read; this keeps a writer's own next read
        exact whatever sits between it and Redis.
        """
        with self._lock:
            self._drop(name)

    def reset(self) -> None:
        """Forget every entry (the store saw Redis fail, so nothing is vouched for)."""
        with self._lock:
            self._break()

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        with self._lock:
            self._break()

    # -- internals (called with the lock held) ------------------------------------
    def _ready(self, now: float) -> bool:
        if self.size <= 0:
            return False
        if self._listen is None:
            if now - self._broken_at < REBUILD_AFTER:
                return False
            try:
                self._connect()
            except redis.ResponseError as exc:
                # A server without CLIENT TRACKING: run without the cache for good.
                log.warning("near cache off: %s", exc)
                self.size = 0
                self._break()
                return False
            except redis.RedisError:
                # Redis is not answering: this request gets its 503 now, after one
                # timeout, rather than a second timeout on the ordinary path.
                self._break()
                raise
        try:
            self._drain(now)
        except (redis.RedisError, OSError):
            self._break()
            return False
        if self._ping_sent and now - self._ping_sent > self.heartbeat:
            # Redis has not answered a PING in time: it may be frozen, or this host
            # cut off from it while others still write. Drop everything, step aside.
            self._drop_all()
            return False
        return self.size > 0

    def _connect(self) -> None:
        self._broken_at = time.monotonic()
        listen = self._connection_class(**self._kwargs)
        self._listen = listen
        listen.connect()
        listen.send_command("CLIENT", "ID")
        listen_id = listen.read_response()
        listen.send_command("SUBSCRIBE", CHANNEL)
        listen.read_response()

        def track(connection: Any) -> None:
            connection.on_connect()
            connection.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", listen_id)
            connection.read_response()

        pool = redis.ConnectionPool(connection_class=self._connection_class,
                                    max_connections=1, redis_connect_func=track,
                                    **self._kwargs)
        self._fill = self._client_class(connection_pool=pool)
        self._fill.ping()  # connects now, so tracking is on before the first fill
        self._drop_all()
        self._ping_sent = 0.0
        self._last_ping = time.monotonic()

    def _drain(self, now: float) -> None:
        listen = self._listen
        while listen.can_read(0):
            message = listen.read_response()
            kind = message[0]
            if kind == "message":
                changed = message[2]
                if changed is None:  # FLUSHALL, FLUSHDB, or tracking lost its table
                    self._drop_all()
                else:
                    for key in changed:
                        self._drop_key(key)
            elif kind == "pong":
                self._ping_sent = 0.0
        if not self._ping_sent and now - self._last_ping >= self.heartbeat:
            listen.send_command("PING")
            self._ping_sent = self._last_ping = now

    def _keep(self, name: str, value: Any, keys: tuple[str, ...], now: float) -> None:
        self._drop(name)  # re-inserted below as the newest
        if len(self._entries) >= self.size:
            self._drop(next(iter(self._entries)))
        self._entries[name] = (now + self.ttl, value, keys)
        for key in keys:
            self._by_key.setdefault(key, set()).add(name)

    def _drop(self, name: str) -> None:
        entry = self._entries.pop(name, None)
        if entry is None:
            return
        for key in entry[2]:
            names = self._by_key.get(key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_key[key]

    def _drop_key(self, key: str) -> None:
        for name in self._by_key.pop(key, set()):
            self._drop(name)

    def _drop_all(self) -> None:
        self._entries.clear()
        self._by_key.clear()

    def _break(self) -> None:
        self._drop_all()
        for holder in (self._listen, self._fill):
            if holder is not None:
                try:
                    if hasattr(holder, "connection_pool"):
                        holder.connection_pool.disconnect()
                    else:
                        holder.disconnect()
                except (redis.RedisError, OSError):
                    pass
        self._listen = self._fill = None
        self._broken_at = time.monotonic()

    def _forget(self) -> None:
        # In a forked child: the sockets belong to the parent; do not close them.
        self._lock = threading.Lock()
        self._entries = {}
        self._by_key = {}
        self._listen = self._fill = None
        self._broken_at = 0.0
        self._ping_sent = 0.0


_ALL: weakref.WeakSet[NearCache] = weakref.WeakSet()


def _forget_in_child() -> None:
    # A forked child must not share its parent's sockets (or vouch for its entries).
    for cache in list(_ALL):
        cache._forget()


os.register_at_fork(after_in_child=_forget_in_child)
