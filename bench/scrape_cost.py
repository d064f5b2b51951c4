"""In-process cost of one `/metrics` scrape, with the multiprocess directory filled as
`engage serve` with 2 workers fills it after the benchmark's requests and one worker
restart.

    python bench/scrape_cost.py             # lines of the answer, µs CPU per scrape
    SCRAPE_DUMP=FILE python bench/scrape_cost.py   # and the answer written to FILE

Starts its own redis-server. Three other processes build the app: the parent of
`engage serve` (no requests), a worker making the benchmark's requests (widget bundle,
read, batch of 100, vote, /metrics), and a worker that writes the fixtures,
makes the same requests and exits (a replaced worker: its counters stay in the
directory). This process is the second worker; after the same requests it answers the
scrape through the WSGI app, measured as profile_hot.py measures a request.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "scrape-cost-secret-key-0123456789"
ARTICLE = {"title": "Bench", "url": "https://news.example.com/bench", "section": "Bench",
           "published_at": "2026-01-08T09:00:00Z", "tags": []}
BATCH = [f"b{n:03d}" for n in range(100)]


def build_app(redis_url: str, data_dir: str) -> Any:
    import logging

    from engage import create_app

    app = create_app({"REDIS_URL": redis_url, "DATA_DIR": data_dir, "SECRET_KEY": SECRET,
                      "LOG_JSON": True, "THROTTLE_VOTES": 10**9})
    logging.getLogger("engage.request").setLevel(logging.WARNING)
    return app


def fixtures(app: Any) -> None:
    """The benchmark's articles, link and poll (written once, by this process)."""
    from engage.store import get_store, tokens

    with app.app_context():
        admin = tokens.create(get_store(), "admin", "scrape")[0]
    staff = {"Authorization": f"Bearer {admin}"}
    client = app.test_client()
    for article in ["bench-read", *BATCH]:
        assert client.put(f"/api/v1/articles/{article}", json=ARTICLE,
                          headers=staff).status_code in (200, 201)
    client.put("/api/v1/articles/bench-read/links", headers=staff,
               json=[{"title": "Policy", "url": "https://example.org/policy"}])
    client.post("/api/v1/polls", headers=staff, json={
        "question": "Q?", "options": ["Yes", "No"], "article": "bench-read",
        "results": "always"})


def requests(app: Any) -> None:
    """What the benchmark's headline asks of every worker."""
    client = app.test_client()
    reader = app.extensions["engage.identity"].mint_reader()
    for path in ("/api/v1/widget?article=bench-read", "/api/v1/articles/bench-read/reactions",
                 "/api/v1/reactions?" + "&".join(f"article={a}" for a in BATCH),
                 "/metrics", "/healthz"):
        assert client.get(path).status_code == 200, path
    client.put("/api/v1/articles/bench-read/reactions/mine", json={"choice": "yes"},
               headers={"X-Engage-Reader": reader})


def child(redis_url: str, data_dir: str, role: str) -> None:
    app = build_app(redis_url, data_dir)
    if role == "replaced":
        fixtures(app)
    if role != "server":
        requests(app)
    print("ready", flush=True)
    if role != "replaced":
        sys.stdin.read()  # until the measuring process closes the pipe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--child", nargs=3, metavar=("REDIS_URL", "DATA_DIR", "ROLE"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from engage.server import MetricsDirectory
    from tests.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(tmp, "metrics")
        metrics_dir = MetricsDirectory.open()  # as `engage serve`: it marks exited ones dead
        server = RedisServer(Path(tmp) / "redis").start()
        others: list[subprocess.Popen[str]] = []
        try:
            for role in ("replaced", "server", "worker"):
                others.append(subprocess.Popen(
                    [sys.executable, __file__, "--child", server.url, tmp, role],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
                assert others[-1].stdout is not None
                assert others[-1].stdout.readline().strip() == "ready"
            others[0].wait(30)
            app = build_app(server.url, tmp)
            requests(app)
            from bench.profile_hot import _caller, _environ, _measure

            scrape = _caller(app, _environ("GET", "/metrics"))
            answer = app.test_client().get("/metrics").get_data()
            lines = answer.splitlines()
            samples = sum(1 for line in lines if not line.startswith(b"#"))
            files = len(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
            if os.environ.get("SCRAPE_DUMP"):
                Path(os.environ["SCRAPE_DUMP"]).write_bytes(answer)
            print(f"/metrics: {len(lines)} lines, {samples} samples, {files} files; "
                  f"{_measure(scrape, 200, args.n):.0f} µs CPU/scrape "
                  f"(min of 7 loops of {args.n})")
        finally:
            for other in others:
                if other.stdin:
                    other.stdin.close()
                other.wait(30)
            server.stop()
            metrics_dir.close()


if __name__ == "__main__":
    main()
