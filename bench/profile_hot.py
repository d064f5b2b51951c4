"""In-process cost of engage's hot requests, against a bare Flask view measured alike.

    python bench/profile_hot.py              # CPU µs per request, least of 7 loops
    python bench/profile_hot.py --profile    # plus a cProfile of each scenario

Starts its own redis-server (tests/redis_server.py), builds the app as a server's
worker does (multiprocess metrics directory, JSON log lines to a discarded stderr) and
calls the WSGI app directly with a prepared environ, so the figure is engage's own
Python per request with no test-client, server or socket overhead. Last, one pass of
the aggregator (what `engage serve` runs in a thread beside its workers) over the votes
cast meanwhile: its CPU per entry applied, here and in Redis.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="engage-prof-"))

from flask import jsonify  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402

SORT = os.environ.get("PROFILE_SORT", "cumulative")
ARTICLE = {"title": "Bench", "url": "https://news.example.com/bench", "section": "Bench",
           "published_at": "2026-01-08T09:00:00Z", "tags": []}


def _caller(app: Any, environ: dict[str, Any], body: bytes = b"",
            vary: Callable[[dict[str, Any]], None] | None = None) -> Callable[[], int]:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)

    def call() -> int:
        env = dict(environ)
        if body:
            env["wsgi.input"] = io.BytesIO(body)
        if vary is not None:
            vary(env)
        for _ in app(env, start_response):
            pass
        return int(statuses.pop()[:3])

    return call


def _environ(method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes = b"") -> dict[str, Any]:
    builder = EnvironBuilder(method=method, path=path, headers=headers or {},
                             data=body or None,
                             content_type="application/json" if body else None)
    env = builder.get_environ()
    env["REMOTE_ADDR"] = "127.0.0.1"
    return env


def _measure(call: Callable[[], int], expect: int, n: int) -> float:
    status = call()
    assert status == expect, status
    runs = []
    for _ in range(7):
        started = time.process_time()
        for _ in range(n):
            call()
        runs.append((time.process_time() - started) / n * 1e6)
    return min(runs)  # the least disturbed loop: the CPUs are shared


def _discard_request_log() -> None:
    """The lines are still formatted and written, to /dev/null instead of the terminal."""
    import logging

    sink = open(os.devnull, "w")  # noqa: SIM115  lives as long as the process
    for handler in logging.getLogger("engage.request").handlers:
        handler.setStream(sink)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()

    from bench.run import redis_cpu
    from engage import create_app
    from engage.store import aggregates, get_store, tokens

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            os.environ["BENCH_REDIS_URL"] = server.url
            from bench.baselines import flask_const, flask_evalsha
            app = create_app({"REDIS_URL": server.url, "DATA_DIR": tmp,
                              "SECRET_KEY": "profile-secret-key-0123456789", "LOG_JSON": True,
                              "THROTTLE_VOTES": 10**9})
            # The bare view's body on engage's app: what engage's app-wide layers (hooks,
            # URL map, contexts, headers) cost before any view of its own runs.
            app.add_url_rule("/api/v1/_constant", "bench_constant",
                             lambda: jsonify(flask_const.BODY))
            _discard_request_log()
            with app.app_context():
                store = get_store()
                admin = tokens.create(store, "admin", "profile")[0]
            auth = {"Authorization": f"Bearer {admin}"}
            import json
            put = _caller(app, _environ("PUT", "/api/v1/articles/bench-read", auth,
                                        json.dumps(ARTICLE).encode()),
                          json.dumps(ARTICLE).encode())
            assert put() in (200, 201)
            read = _caller(app, _environ("GET", "/api/v1/articles/bench-read/reactions"))
            bundle = _caller(app, _environ("GET", "/api/v1/widget?article=bench-read"))
            batch_ids = [f"b{n:03d}" for n in range(100)]
            with app.test_client() as client:
                for article_id in batch_ids:
                    assert client.put(f"/api/v1/articles/{article_id}", json=ARTICLE,
                                      headers=auth).status_code in (200, 201)
                # What a page view asks: one article with its links and a poll.
                assert client.put("/api/v1/articles/bench-read/links", headers=auth, json=[
                    {"title": f"Link {n}", "url": f"https://example.org/{n}"}
                    for n in range(3)]).status_code == 200
                assert client.post("/api/v1/polls", headers=auth, json={
                    "question": "Will the talks last?", "options": ["Yes", "No", "Maybe"],
                    "article": "bench-read", "results": "always"}).status_code == 201
            batch = _caller(app, _environ(
                "GET", "/api/v1/reactions?" + "&".join(f"article={a}" for a in batch_ids)))
            readers = app.extensions["engage.identity"]
            token = readers.mint_reader()
            vote_body = json.dumps({"choice": "yes"}).encode()
            vote_env = _environ("PUT", "/api/v1/articles/bench-read/reactions/mine",
                                {"X-Engage-Reader": token}, vote_body)
            fresh = iter([readers.mint_reader() for _ in range(8 * args.n + 10)])
            new_vote = _caller(app, vote_env, vote_body,
                               lambda env: env.update(HTTP_X_ENGAGE_READER=next(fresh)))
            const = _caller(flask_const.app, _environ("GET", "/"))
            bare_env = _environ("PUT", "/vote", {"X-Engage-Reader": "r"}, vote_body)
            plain = (f"r{i}" for i in range(10**9))
            bare_vote = _caller(flask_evalsha.app, bare_env, vote_body,
                                lambda env: env.update(HTTP_X_ENGAGE_READER=next(plain)))

            results = {
                "engage read": _measure(read, 200, args.n),
                "engage widget bundle": _measure(bundle, 200, args.n),
                "engage batch of 100": _measure(batch, 200, args.n),
                "engage vote (new reader)": _measure(new_vote, 200, args.n),
                "bare Flask constant JSON": _measure(const, 200, args.n),
                "engage app, the constant view": _measure(
                    _caller(app, _environ("GET", "/api/v1/_constant")), 200, args.n),
                "bare Flask EVALSHA vote": _measure(bare_vote, 200, args.n),
            }
            for name, us in results.items():
                print(f"{name:32s} {us:8.1f} µs CPU/request")
            # What engage serve's aggregates thread then spends on each vote: one pass
            # over all the votes above, in this process and in Redis.
            with app.app_context():
                store = get_store()
                redis_before = redis_cpu(store.redis)
                started = time.process_time()
                applied = aggregates.Aggregator(store).step()
                python_us = (time.process_time() - started) / applied * 1e6
                redis_us = (redis_cpu(store.redis) - redis_before) / applied * 1e6
            print(f"{'aggregator, per entry applied':32s} {python_us:8.1f} µs CPU "
                  f"(Redis {redis_us:.1f} µs; {applied:,} entries, nearly all votes)")
            if args.profile:
                fresh = iter([readers.mint_reader() for _ in range(args.n + 10)])
                for name, call in (("read", read), ("bundle", bundle), ("batch", batch),
                                   ("vote", new_vote)):
                    prof = cProfile.Profile()
                    prof.enable()
                    for _ in range(args.n):
                        call()
                    prof.disable()
                    out = io.StringIO()
                    pstats.Stats(prof, stream=out).sort_stats(SORT).print_stats(90)
                    print(f"== {name}", file=sys.stdout)
                    print(out.getvalue(), file=sys.stdout)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
