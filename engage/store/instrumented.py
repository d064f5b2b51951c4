"""A redis-py client that times every logical operation and counts its failures.

One observation per call the app makes: a command, a whole pipeline, or a Lua script
(named after its `scripts.ALL` entry), retries included, so the figure is what a
request waited for. Labels stay bounded: script names and Redis command names are
fixed sets; anything else is "other". The time histogram is by kind (script,
pipeline, command), the per-operation figures counters (engage/metrics.py says why).
"""

from __future__ import annotations

import hashlib
import re
import time
from functools import cache
from typing import Any

import redis
from redis.cluster import RedisCluster

from engage import metrics
from engage.store import scripts

_COMMAND_RE = re.compile(r"^[A-Za-z]{1,20}$")


@cache
def _script_names() -> dict[str, str]:
    return {hashlib.sha1(src.encode()).hexdigest(): name for name, src in scripts.ALL.items()}


def op_label(args: tuple[Any, ...]) -> str:
    if not args:
        return "other"
    command = str(args[0])
    if command.upper() in {"EVALSHA", "EVAL"} and len(args) > 1:
        return "script:" + _script_names().get(str(args[1]), "other")
    return command.lower() if _COMMAND_RE.match(command) else "other"


def op_kind(op: str) -> str:
    """The histogram's label for an `op_label` of a client call: script or command."""
    return "script" if op.startswith("script:") else "command"


def prime() -> None:
    """Error series at zero for pipelines, which every read path runs: enough for the
    error panels and alert, which sum over operations."""
    metrics.prime_redis_ops(["pipeline"])


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, redis.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.ConnectionError):
        return "connection"
    if isinstance(exc, redis.ResponseError):
        return "response"
    return "other"


def _timed(kind: str, op: str, call: Any) -> Any:
    started = time.perf_counter()
    try:
        result = call()
    except redis.RedisError as exc:
        if isinstance(exc, redis.exceptions.NoScriptError):
            raise  # redis-py loads the script and retries; not a failure of ours
        metrics.redis_observed(kind, op, time.perf_counter() - started, error_kind(exc))
        raise
    metrics.redis_observed(kind, op, time.perf_counter() - started)
    return result


def _timed_command(args: tuple[Any, ...], call: Any) -> Any:
    op = op_label(args)
    return _timed(op_kind(op), op, call)


class TimedPipeline:
    """A client's own pipeline, its `execute` timed as one operation; commands are
    queued on the pipeline itself."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def __enter__(self) -> TimedPipeline:
        self.pipe.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pipe.__exit__(*exc)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        replies: list[Any] = _timed("pipeline", "pipeline",
                                    lambda: self.pipe.execute(raise_on_error))
        return replies


class InstrumentedRedis(redis.Redis):
    def execute_command(self, *args: Any, **options: Any) -> Any:
        run = super().execute_command
        return _timed_command(args, lambda: run(*args, **options))

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return TimedPipeline(super().pipeline(transaction, shard_hint))


class InstrumentedRedisCluster(RedisCluster):
    """The same timing for a Redis Cluster client (store/cluster.py)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        run = super().execute_command
        return _timed_command(args, lambda: run(*args, **options))

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        return TimedPipeline(super().pipeline(transaction, shard_hint))
