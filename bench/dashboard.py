"""The dashboard at newsroom scale: editors' reads against archives of growing size.

    python bench/dashboard.py                          # 1,000, 10,000 and 100,000 articles
    python bench/dashboard.py --sizes 1000,10000       # what fits the time you have
    python bench/dashboard.py --compare 0cd90e4 --compare-size 2000

Each size gets its own redis-server and a fixture written through the store: articles
published at PER_DAY a day going back as far as the size needs (so 100,000 articles are
about a year), each with votes cast through the real vote script (pipelined) during its
first three days, a few links clicked and viewed. Then the aggregates are built the way an
upgrade would (`engage stats rebuild`: a replay of every stream), their memory per article
measured, and each read timed in-process through Flask's test client (the app and Redis
cost, no HTTP server): p50 and p99 of REQUESTS calls.

`--compare REF` runs the same fixture and reads with the code of commit REF (unpacked with
`git archive` in a temporary directory, this script run again against it); that code has no
aggregates, so its rebuild step is skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, os.environ.get("ENGAGE_BENCH_TREE") or str(REPO))
sys.path.insert(1, str(BENCH))

# engage first: bench/run.py puts this checkout on the path, and --compare needs the
# reference tree's engage.
from engage import create_app  # noqa: E402, I001
from engage.store import get_store, tokens  # noqa: E402
from engage.store.articles import upsert_args, upsert_keys  # noqa: E402
from engage.store.reactions import vote_args, vote_keys  # noqa: E402
from run import redis_server, resolve_commit, unpack_commit  # noqa: E402

SECRET = "bench-secret-key-0123456789-abcdef"
PER_DAY = 300
SECTIONS = ["News", "Politics", "Business", "Sport", "Culture", "Science", "Opinion"]
PIPELINE = 2000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_fixture(store: Any, size: int, votes_per_article: int, seed: int = 7) -> dict[str, Any]:
    """`size` articles with history, written in pipelines of the real scripts."""
    rng = random.Random(seed)
    keys = store.keys
    now = datetime.now(UTC)
    started = time.perf_counter()
    # A script called in a pipeline is not loaded on demand: a new Redis has none yet.
    for name in ("upsert_article", "vote_reaction"):
        store.redis.script_load(store.scripts[name].script)
    pipe = store.redis.pipeline(transaction=False)
    pending = 0
    votes = 0

    def flush() -> None:
        nonlocal pipe, pending
        pipe.execute()
        pipe = store.redis.pipeline(transaction=False)
        pending = 0

    for index in range(size):
        aid = f"art-{index:06d}"
        published = now - timedelta(days=index / PER_DAY, minutes=rng.randrange(60))
        section = SECTIONS[index % len(SECTIONS)]
        store.scripts["upsert_article"](
            keys=upsert_keys(store, aid),
            args=upsert_args(store, aid, {"title": f"Story {index}", "section": section,
                                          "url": f"https://news.example.com/{aid}",
                                          "published_at": published}, "editor", now),
            client=pipe)
        pipe.zadd(keys.articles, {aid: published.timestamp()})
        pipe.zadd(keys.section(section), {aid: published.timestamp()})
        pipe.sadd(keys.sections, section)
        pending += 4
        # Quality differs per article, so the approval ranking has something to rank.
        liking = rng.random()
        for n in range(rng.randrange(2 * votes_per_article + 1)):
            when = min(now, published + timedelta(minutes=rng.randrange(3 * 24 * 60)))
            choice = "yes" if rng.random() < liking else "no"
            store.scripts["vote_reaction"](
                keys=vote_keys(keys, aid, f"a{index}-{n}", when),
                args=vote_args(store, aid, f"reader-{n}", choice, None, when),
                client=pipe)
            pending += 1
            votes += 1
        if pending >= PIPELINE:
            flush()
    flush()
    return {"articles": size, "votes": votes, "seconds": round(time.perf_counter() - started, 1)}


def sign_in(client: Any, token: str) -> None:
    page = client.get("/dashboard/signin").get_data(as_text=True)
    marker = 'name="csrf_token" value="'
    csrf = page[page.index(marker) + len(marker):].split('"', 1)[0]
    response = client.post("/dashboard/signin", data={"token": token, "csrf_token": csrf})
    assert response.status_code == 302, response.status_code


def timed(client: Any, path: str, requests: int, headers: dict[str, str] | None = None,
          follow: Any = None) -> dict[str, float]:
    samples = []
    for _ in range(requests):
        target = follow(path) if follow else path
        started = time.perf_counter()
        response = client.get(target, headers=headers or {})
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (target, response.status_code)
        if follow:
            follow.seen(response)
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return {"p50_ms": round(statistics.median(samples), 1), "p99_ms": round(p99, 1),
            "n": len(samples)}


class LiveCursor:
    """What the live page does: send back the cursor of the previous answer."""

    def __init__(self) -> None:
        self.cursor = ""

    def __call__(self, path: str) -> str:
        return f"{path}?since={self.cursor}" if self.cursor else path

    def seen(self, response: Any) -> None:
        self.cursor = (response.json or {}).get("cursor") or self.cursor


def measure(size: int, votes_per_article: int, requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="engage-dash-") as tmp:
        work = Path(tmp)
        with redis_server(work) as (url, _process):
            app = create_app({"REDIS_URL": url, "SECRET_KEY": SECRET, "DATA_DIR": str(work),
                              "LOG_JSON": False, "THROTTLE_VOTES": 10**9})
            with app.app_context():
                store = get_store()
                log(f"{size}: writing the fixture")
                result: dict[str, Any] = {"fixture": build_fixture(store, size,
                                                                   votes_per_article)}
                log(f"{size}: {result['fixture']}")
                try:
                    from engage.store import aggregates
                except ImportError:  # code from before the aggregates
                    aggregates = None
                if aggregates is not None:
                    before = int(store.redis.info("memory")["used_memory"])
                    started = time.perf_counter()
                    replayed = aggregates.rebuild(store)
                    seconds = time.perf_counter() - started
                    after = int(store.redis.info("memory")["used_memory"])
                    # A pass with nothing new bounds the lag: a vote waits at most for
                    # the pass under way, the pause after it, and the next pass.
                    aggregator = aggregates.Aggregator(store)
                    aggregator.step()
                    started = time.perf_counter()
                    aggregator.step()
                    idle_pass = time.perf_counter() - started
                    from engage.store import windows
                    rolls = {}
                    for name in ("7d", "30d"):  # what a window costs when it moves on
                        store.redis.delete(store.keys.agg(f"w:{name}:meta"))
                        started = time.perf_counter()
                        windows.roll(store, store.now())
                        rolls[name] = round((time.perf_counter() - started) * 1000, 1)
                    result["aggregates"] = {
                        "roll_ms": rolls,
                        "events": replayed, "rebuild_seconds": round(seconds, 1),
                        "events_per_second": round(replayed / seconds),
                        "bytes_per_article": round((after - before) / size),
                        "pass_seconds": round(idle_pass, 2),
                    }
                    log(f"{size}: {result['aggregates']}")
                token = tokens.create(store, "editor", "bench")[0]
            client = app.test_client()
            editor = {"Authorization": f"Bearer {token}"}

            def week_ago() -> str:
                return (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")

            # Loading the fixture grows the AOF enough to start a rewrite (a fork and a
            # busy child on a 2-core machine): let it finish so the reads are timed on
            # a server in its steady state.
            waited = time.perf_counter()
            while int(store.redis.info("persistence").get("aof_rewrite_in_progress", 0)):
                time.sleep(0.5)
            log(f"{size}: waited {time.perf_counter() - waited:.1f} s for the AOF rewrite")
            # As the worker does every second: rolling windows follow the clock, so an
            # hour turning during a long run does not time the fallback.
            catch_up = aggregates.Aggregator(store).step if aggregates else (lambda: 0)
            reads: dict[str, dict[str, float]] = {}
            for sort in ("approval", "votes", "trending"):
                catch_up()
                reads[f"articles {sort} all"] = timed(
                    client, f"/api/v1/stats/articles?sort={sort}", requests, editor)
                catch_up()
                reads[f"articles {sort} 7d"] = timed(
                    client, f"/api/v1/stats/articles?sort={sort}&since={week_ago()}", requests,
                    editor)
            catch_up()
            reads["sections"] = timed(client, "/api/v1/stats/sections", requests, editor)
            catch_up()
            reads["sections 7d"] = timed(client, f"/api/v1/stats/sections?since={week_ago()}",
                                         requests, editor)
            sign_in(client, token)
            catch_up()
            reads["dashboard"] = timed(client, "/dashboard", requests)
            catch_up()
            reads["dashboard 7d"] = timed(client, "/dashboard?range=7d", requests)
            reads["live.json"] = timed(client, "/dashboard/live.json", requests,
                                       follow=LiveCursor())
            for name, figure in reads.items():
                log(f"{size}: {name:24} p50 {figure['p50_ms']:8.1f} ms"
                    f"  p99 {figure['p99_ms']:8.1f} ms")
            result["reads"] = reads
            return result


def main() -> int:
    logging.getLogger("engage.request").setLevel(logging.WARNING)  # one line per request
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--votes", type=int, default=6, help="Mean votes per article.")
    parser.add_argument("--requests", type=int, default=40, help="Calls per read.")
    parser.add_argument("--compare", metavar="REF", help="Also time commit REF's code.")
    parser.add_argument("--compare-size", type=int, default=2000)
    parser.add_argument("--compare-requests", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args()
    report: dict[str, Any] = {"sizes": {}}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        report["sizes"][size] = measure(size, args.votes, args.requests)
    if args.compare:
        sha = resolve_commit(args.compare)
        if sha is None:
            print(f"--compare {args.compare}: not a commit of this repository", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="engage-dash-ref-") as tmp:
            short, tree = unpack_commit(sha, Path(tmp))
            out = Path(tmp) / "ref.json"
            env = {**os.environ, "ENGAGE_BENCH_TREE": str(tree)}
            subprocess.run([sys.executable, __file__, "--sizes", str(args.compare_size),
                            "--votes", str(args.votes), "--requests",
                            str(args.compare_requests), "--json", str(out)],
                           env=env, check=True)
            report["compare"] = {"ref": short, "size": args.compare_size,
                                 **json.loads(out.read_text())["sizes"][str(args.compare_size)]}
    report["summary"] = summary(report)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Per read: largest size / smallest size (target <= 3) and, with --compare, the
    reference code's p50 / the largest size's p50 (target >= 10)."""
    sizes = sorted(report["sizes"])
    if not sizes:
        return {}
    small, large = report["sizes"][sizes[0]]["reads"], report["sizes"][sizes[-1]]["reads"]
    ref = report.get("compare", {}).get("reads", {})
    out = {}
    for name in large:
        row = {"growth_p50": round(large[name]["p50_ms"] / max(small[name]["p50_ms"], 0.01), 2),
               "growth_p99": round(large[name]["p99_ms"] / max(small[name]["p99_ms"], 0.01), 2)}
        if name in ref:
            row["speedup_p50"] = round(ref[name]["p50_ms"] / max(large[name]["p50_ms"], 0.01), 1)
        out[name] = row
    return out


if __name__ == "__main__":
    sys.exit(main())
