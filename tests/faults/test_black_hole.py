"""Redis that takes connections and never answers: every request still ends in time.

Two black holes: a redis-server frozen with SIGSTOP mid-load (its sockets stay open,
nothing is read), and a port whose listen queue is full and never accepted from (the
TCP connect itself never completes). Requests must end with 503 + Retry-After within
the configured timeouts, the workers must stay free for other requests, and service
must come back by itself.
"""

from __future__ import annotations

import socket
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
# A command waits at most one socket timeout (timeouts are not retried) after at most
# one connect timeout; the margin covers a busy test machine.
BOUND = SOCKET_TIMEOUT + CONNECT_TIMEOUT + 0.8
SETTINGS = {
    "THROTTLE_VOTES": "1000000000",
    "REDIS_SOCKET_TIMEOUT": str(SOCKET_TIMEOUT),
    "REDIS_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
}


def test_paused_redis_under_load(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    served = None
    try:
        app = make_app(redis.url, tmp_path, SECRET_KEY=SECRET)
        register_article(app, "frozen")
        readers = mint_readers(app, 8_000)
        served = Served(redis.url, tmp_path, SECRET_KEY=SECRET, **SETTINGS)
        workers = sorted(served.workers())
        probe = requests.Session()
        with Load(served.url, "frozen", readers, threads=4) as load:
            time.sleep(0.8)
            redis.pause()
            paused_at = time.monotonic()
            time.sleep(1.2)
            started = time.monotonic()
            alive = probe.get(served.url + "/healthz", timeout=10)
            health_latency = time.monotonic() - started
            time.sleep(3.0 + COUNTS_CACHE_SECONDS)
            resumed_at = time.monotonic()
            redis.resume()
            recovery = wait_for(
                lambda: probe.get(
                    served.url + "/api/v1/articles/frozen/reactions", timeout=5
                ).status_code == 200,
                timeout=5.0,
            )
            time.sleep(1.0)
        outcomes = load.recorder.outcomes
        statuses = {o.status for o in outcomes}
        assert statuses <= {200, 503}, statuses
        # Anonymous counts read just before the pause are answered from the workers'
        # cache until they are COUNTS_CACHE_SECONDS old: leave that second out.
        during = load.recorder.between(paused_at + COUNTS_CACHE_SECONDS + 0.1,
                                       resumed_at - BOUND)
        assert during and all(o.status == 503 and o.retry_after for o in during)
        slowest = max(o.elapsed for o in outcomes)
        print(f"paused redis: {len(outcomes)} requests, {len(during)} while frozen, "
              f"slowest {slowest:.3f} s (bound {BOUND:.1f} s), healthz {health_latency:.3f} s, "
              f"recovered {recovery:.2f} s after resume")
        assert slowest < BOUND
        assert alive.status_code == 200 and health_latency < BOUND
        after = load.recorder.between(resumed_at + recovery + 0.3, float("inf"))
        assert after and all(o.status == 200 for o in after)
        assert sorted(served.workers()) == workers
    finally:
        if served:
            served.stop()
        redis.resume() if redis.process else None
        redis.stop()


def test_port_that_never_accepts(tmp_path: Path) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    # Fill the accept queue so that further SYNs are dropped and connects hang.
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    served = None
    try:
        served = Served(f"redis://127.0.0.1:{port}/0", tmp_path, workers=1, SECRET_KEY=SECRET,
                        **SETTINGS)
        session = requests.Session()
        # Minting needs only the secret, not Redis.
        app = make_app(f"redis://127.0.0.1:{port}/0", tmp_path, SECRET_KEY=SECRET)
        reader = {"X-Engage-Reader": mint_readers(app, 1)[0]}
        calls = [
            ("GET", "/api/v1/articles/a1/reactions", {}),
            ("GET", "/api/v1/reactions?article=a1&article=a2", {}),
            ("GET", "/api/v1/articles/a1", {}),
            ("GET", "/readyz", {}),
            ("PUT", "/api/v1/articles/a1/reactions/mine",
             {"json": {"choice": "yes"}, "headers": reader}),
        ]
        slowest = 0.0
        for method, path, kwargs in calls * 2:
            started = time.monotonic()
            response = session.request(method, served.url + path, timeout=10, **kwargs)
            elapsed = time.monotonic() - started
            slowest = max(slowest, elapsed)
            assert elapsed < BOUND, (path, elapsed)
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert response.headers["Retry-After"]
        print(f"black-hole port: slowest request {slowest:.3f} s (bound {BOUND:.1f} s)")
        assert session.get(served.url + "/healthz", timeout=2).status_code == 200
    finally:
        if served:
            served.stop()
        for filler in fillers:
            filler.close()
        hole.close()
