"""Redis stopped for five seconds under load, then started again.

engage under `engage serve` keeps answering: 503 with Retry-After while Redis is away, once
the anonymous counts it holds (at most a second old) have aged out (never
a 500, never a request longer than the Redis timeouts allow), and full service again
within five seconds of Redis coming back, from the same workers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from engage.store import COUNTS_CACHE_SECONDS
from tests.conftest import make_app
from tests.faults import SECRET, Load, mint_readers, register_article, wait_for
from tests.redis_server import RedisServer
from tests.test_server import Served

pytestmark = pytest.mark.slow

SOCKET_TIMEOUT = 1.0
CONNECT_TIMEOUT = 0.5
RETRIES = 1
DOWN_FOR = 5.0  # long enough for hundreds of refused requests; each ends in ms
# One command may wait a connect timeout per attempt plus a socket timeout; the margin
# covers the retry backoff (capped at 0.2 s) and a busy test machine.
LATENCY_BOUND = SOCKET_TIMEOUT + (RETRIES + 1) * CONNECT_TIMEOUT + 0.8


def test_redis_stopped_under_load(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", None, "--appendonly", "yes").start()
    served = None
    try:
        app = make_app(redis.url, tmp_path, SECRET_KEY=SECRET, THROTTLE_VOTES=10**9)
        register_article(app, "outage")
        readers = mint_readers(app, 12_000)
        served = Served(
            redis.url, tmp_path, SECRET_KEY=SECRET, THROTTLE_VOTES="1000000000",
            REDIS_SOCKET_TIMEOUT=str(SOCKET_TIMEOUT), REDIS_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT),
            REDIS_RETRIES=str(RETRIES),
        )
        workers = sorted(served.workers())
        probe = requests.Session()

        with Load(served.url, "outage", readers, threads=6) as load:
            time.sleep(1.0)
            redis.stop()  # SIGTERM: Redis flushes its AOF and exits
            stopped_at = time.monotonic()
            time.sleep(1.0)
            ready = probe.get(served.url + "/readyz", timeout=5)
            alive = probe.get(served.url + "/healthz", timeout=5)
            time.sleep(DOWN_FOR - 1.0)
            restarted_at = time.monotonic()
            redis.start()
            recovery = wait_for(
                lambda: probe.get(
                    served.url + "/api/v1/articles/outage/reactions", timeout=5
                ).status_code == 200,
                timeout=5.0,
            )
            time.sleep(2.0)
        outcomes = load.recorder.outcomes

        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert alive.status_code == 200
        statuses = {o.status for o in outcomes}
        assert statuses <= {200, 503}, statuses  # no 500, no dropped connection
        # Anonymous counts a worker read just before the stop are answered from its cache
        # until they are COUNTS_CACHE_SECONDS old, and a request begun just before the
        # restart may succeed on its retry: leave both out.
        during = load.recorder.between(stopped_at + COUNTS_CACHE_SECONDS + 0.2,
                                       restarted_at - 0.5)
        assert len(during) > 50
        for outcome in during:
            assert outcome.status == 503, outcome
            assert outcome.retry_after and int(outcome.retry_after) > 0
            assert outcome.body["error"]["code"] == "storage_unavailable"
        slowest = max(o.elapsed for o in outcomes)
        print(f"requests {len(outcomes)}, during outage {len(during)}, "
              f"slowest {slowest:.3f} s (bound {LATENCY_BOUND:.1f} s), "
              f"recovered {recovery:.2f} s after restart")
        assert slowest < LATENCY_BOUND
        # Once back, everything is served again, by the same workers.
        after = load.recorder.between(restarted_at + recovery + 0.5, float("inf"))
        assert after and all(o.status == 200 for o in after), {o.status for o in after}
        assert sorted(served.workers()) == workers
        counts = redis.client().hgetall("engage:a:{outage}:counts")
        voters = redis.client().hlen("engage:a:{outage}:voters")
        assert sum(int(n) for n in counts.values()) == voters
    finally:
        if served:
            served.stop()
        redis.stop()
