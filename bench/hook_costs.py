"""Cost of each app-wide request hook, timed one by one inside a real request context.

    python bench/hook_costs.py

Whole-request loops (profile_hot.py) move by tens of µs with the load of a shared
machine; a hook called thousands of times in a row shows its own few µs steadily.
Starts its own redis-server; the request is an anonymous reactions read.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="engage-hooks-"))

from tests.redis_server import RedisServer  # noqa: E402


def _name(func: Any) -> str:
    func = getattr(func, "func", func)
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _time(call: Any, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(n):
            call()
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def main(n: int = 5000) -> None:
    from bench.profile_hot import _discard_request_log
    from engage import create_app

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            app = create_app({"REDIS_URL": server.url, "DATA_DIR": tmp,
                              "SECRET_KEY": "hook-costs-secret-0123456789", "LOG_JSON": True})
            _discard_request_log()
            path = "/api/v1/articles/bench-read/reactions"
            with app.test_request_context(path):
                response = app.response_class('{"total":0}', mimetype="application/json")
                rows = []
                for func in app.before_request_funcs.get(None, []):
                    rows.append(("before", _name(func), _time(app.ensure_sync(func), n)))
                for func in app.after_request_funcs.get(None, []):
                    hook = app.ensure_sync(func)
                    rows.append(("after", _name(func),
                                 _time(lambda hook=hook: hook(response), n)))
                for func in app.teardown_request_funcs.get(None, []):
                    hook = app.ensure_sync(func)
                    rows.append(("teardown", _name(func), _time(lambda hook=hook: hook(None), n)))
            env = app.test_request_context(path).request.environ
            rows.append(("context", "request context push + pop (session open included)",
                         _time(lambda: app.request_context(dict(env)).__enter__().pop(), n)))
            for kind, name, us in rows:
                print(f"{kind:9s} {us:7.2f} µs  {name}")
            print(f"{'total':9s} {sum(r[2] for r in rows):7.2f} µs")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
