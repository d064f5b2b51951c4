"""engage benchmark: wrk on loopback against engage, its layers alone, bare Flask views, isso.

    python bench/run.py --quick           # about 6 minutes: 3 rounds of 3 s per figure
    python bench/run.py                   # about 12 minutes: 5 rounds of 6 s per figure
    python bench/run.py --compare REF     # also an older commit of engage, side by side
    python bench/run.py --quick --headline   # about 2 minutes: the CPU headline only

Everything runs on this machine: a dedicated redis-server (AOF on, fsync every second,
as the embedded server), wrk from a second process. engage runs as `engage serve` runs
it (its default server and settings), and so do its app-wide layers alone around two
bench-only views that do no work of their own (bench/engage_layers.py: the floor under any
engage view); the bare Flask views and isso run under gunicorn
sync, the deployment a Flask user compares with; every server has the same number of
workers. Each figure is the median of several rounds. Results go to
bench/results/<stamp>.{json,md} and bench/results/latest.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis
import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from engage import create_app  # noqa: E402
from engage.cli import serve as serve_command  # noqa: E402
from engage.identity import get_identity  # noqa: E402
from engage.store import get_store, polls, reactions, tokens  # noqa: E402
from engage.store.embedded import redis_server_binary  # noqa: E402

SECRET = "bench-secret-key-0123456789-abcdef"
ISSO_VENV = BENCH / ".isso-venv"
ARTICLE = {
    "title": "China and South Korea enter a new phase",
    "url": "https://news.example.com/diplomacy/korea-china-reset",
    "section": "Diplomacy",
    "published_at": "2026-01-08T09:00:00Z",
    "tags": ["China", "South Korea"],
}
# --two-sites: the second site's publisher origin, and the label of that install's figures.
ARTICLE_ORIGIN = "https://news.example.com"
SECOND_ORIGIN = "https://second.example"
TWO_SITES = "engage two sites"
# What `--headline` measures: engage's page-view requests, its vote and /metrics, and the
# two bare views they are held against.
HEADLINE_SCENARIOS = ("widget_bundle", "reactions_read", "batch_100", "vote_new_reader",
                      "metrics_scrape")
# The worker count `engage serve` starts with; every server in the run gets the same.
SERVE_WORKERS = int(next(p.default for p in serve_command.params  # type: ignore[arg-type]
                         if p.name == "workers"))


# -- helpers ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None,
              method: str = "GET") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited while starting: {url}")
        try:
            requests.request(method, url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.processes():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(name: str, args: list[str], env: dict[str, str], work: Path,
                 ready_path: str = "/", ready_method: str = "GET") -> Server:
    """Run `args` ({port} replaced by a free port) and wait until it answers HTTP."""
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in args]
    logfile = open(work / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(args, cwd=work, env={**os.environ, **env},
                               stdout=logfile, stderr=logfile)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + ready_path, process=process, method=ready_method)
    except RuntimeError as exc:
        Server(name, url, process).stop()  # no caller holds it to stop it later
        tail = (work / f"{name}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name}: {exc}; the end of its log:\n{tail}") from None
    return Server(name, url, process)


def engage_serve_args(workers: int, *options: str) -> list[str]:
    """`engage serve` of whichever engage PYTHONPATH finds first."""
    return [sys.executable, "-m", "engage.cli", "serve", "--bind", "127.0.0.1:{port}",
            "--workers", str(workers), *options]


def gunicorn_sync_args(target: str, workers: int, python: str = sys.executable) -> list[str]:
    return [python, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", "sync", "--log-level", "warning", target]


# -- wrk ----------------------------------------------------------------------------------
# Each wrk thread takes its own share of a file of reader tokens.
LUA_TOKENS = r"""
local counter, tokens, idx, pass = 0, {}, 0, 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args)
  local file, nthreads, i = args[1], tonumber(args[2]), 0
  for line in io.lines(file) do
    if i % nthreads == tid then tokens[#tokens + 1] = line end
    i = i + 1
  end
end
"""

LUA_VOTE = LUA_TOKENS + r"""
-- Every request is a new reader.
function request()
  idx = idx + 1
  if idx > #tokens then idx = 1 end
  return wrk.format("PUT", nil, {["Content-Type"] = "application/json",
    ["X-Engage-Reader"] = tokens[idx]}, '{"choice":"yes"}')
end
"""

LUA_CHANGE = LUA_TOKENS + r"""
-- A pool of readers who already voted "yes"; every request moves one reader's vote.
function request()
  idx = idx + 1
  if idx > #tokens then idx = 1; pass = pass + 1 end
  local choice = (pass % 2 == 0) and "no" or "yes"
  return wrk.format("PUT", nil, {["Content-Type"] = "application/json",
    ["X-Engage-Reader"] = tokens[idx]}, '{"choice":"' .. choice .. '"}')
end
"""

LUA_ISSO_LIKE = r"""
-- isso dedupes likes per /24 address and caps a comment at 142 votes: spread the votes
-- over many comments and give each request its own /24 through X-Forwarded-For. Every
-- run and thread starts at its own n, so no (comment, address) pair comes twice and
-- every like is a write (pairs repeat only after 8,192,000 values of n).
local counter, n, comments = 0, 0, 1
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args)
  local run, threads = tonumber(args[1]), tonumber(args[2])
  comments = tonumber(args[3])
  n = (run * threads + tid) * 100003
end
function request()
  n = n + 1
  local id = (n % comments) + 1
  local ip = string.format("10.%d.%d.1", math.floor(n / 256) % 256, n % 256)
  return wrk.format("POST", "/id/" .. id .. "/like", {["X-Forwarded-For"] = ip})
end
"""

LUA_POST_JSON = r"""
function init(args) wrk.method = "POST"; wrk.body = args[1]
  wrk.headers["Content-Type"] = "application/json" end
"""

LUA_PACED = r"""
-- A fixed rate: every connection waits BENCH_PAUSE_MS between requests.
local pause = tonumber(os.getenv("BENCH_PAUSE_MS"))
function delay() return pause end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unparsed latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx/3xx answers plus socket errors


def parse_wrk(output: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    bad = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        bad += int(found.group(1))
    if found := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                          output):
        bad += sum(int(g) for g in found.groups())
    return WrkResult(rps, p50, p99, total, bad)


@dataclass
class Scenario:
    name: str
    url: str
    lua: str | None = None
    lua_args: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    before_run: Callable[[int], list[str]] | None = None  # run index -> extra lua args


@dataclass
class Figure:
    scenario: str
    target: str
    rps: float
    p50_ms: float
    p99_ms: float
    runs: list[dict[str, Any]]
    bad: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Item:
    """One (target, scenario) pair, measured once per round."""

    target: str
    scenario: Scenario
    server: Server
    stored: Callable[[], int] | None = None  # votes stored so far: its growth counts votes
    paced_ms: int | None = None
    results: list[WrkResult] = field(default_factory=list)
    server_cpu: float = 0.0
    redis_cpu: float = 0.0
    votes: int = 0

    def figure(self) -> Figure:
        figure = Figure(
            scenario=self.scenario.name + ("@half" if self.paced_ms else ""),
            target=self.target,
            rps=statistics.median(r.rps for r in self.results),
            p50_ms=statistics.median(r.p50_ms for r in self.results),
            p99_ms=statistics.median(r.p99_ms for r in self.results),
            runs=[asdict(r) for r in self.results], bad=sum(r.bad for r in self.results),
        )
        figure.extra["requests"] = sum(r.requests for r in self.results)
        figure.extra["server_cpu_s"] = round(self.server_cpu, 3)
        if self.paced_ms:
            figure.extra["pause_ms_per_connection"] = self.paced_ms
        if self.stored and not self.paced_ms:
            figure.extra["distinct_votes_stored"] = self.votes
            figure.extra["server_cpu_ms_per_vote"] = round(
                self.server_cpu / max(self.votes, 1) * 1000, 3)
            figure.extra["redis_cpu_ms_per_vote"] = round(
                self.redis_cpu / max(self.votes, 1) * 1000, 4)
        return figure


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, rclient: redis.Redis) -> None:
        self.args = args
        self.work = work
        self.rclient = rclient

    def wrk(self, scenario: Scenario, run: int, duration: float,
            paced_ms: int | None = None) -> WrkResult:
        cmd = ["wrk", "-t", str(self.args.threads), "-c", str(self.args.connections),
               "-d", f"{duration:g}s", "--latency", "--timeout", "5s"]
        for name, value in scenario.headers.items():
            cmd += ["-H", f"{name}: {value}"]
        lua, lua_args = scenario.lua, list(scenario.lua_args)
        env = dict(os.environ)
        if paced_ms is not None:
            lua = (lua or "") + LUA_PACED
            env["BENCH_PAUSE_MS"] = str(paced_ms)
        if scenario.before_run is not None:
            lua_args = scenario.before_run(run) + lua_args
        if lua:
            script = self.work / f"{scenario.name}.lua"
            script.write_text(lua)
            cmd += ["-s", str(script)]
        cmd.append(scenario.url.replace("{run}", str(run)))
        if lua_args:
            cmd += ["--", *lua_args]
        output = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        return parse_wrk(output)

    def pause_for(self, scenario: Scenario, rate: float) -> int:
        """The pause (ms) between one connection's requests that offers about `rate`
        req/s in all: a connection's cycle less the median answer time of a 1 s trial."""
        cycle = self.args.connections / rate * 1000
        trial = self.wrk(scenario, self.args.runs, 1.0, max(1, round(cycle)))
        return max(1, round(cycle - trial.p50_ms))

    def rounds(self, items: list[Item], runs: int) -> None:
        """Round-robin: every item once per round, so background load hits all alike."""
        for item in items:
            if not item.paced_ms:
                # Warm-up: a server starts its threads and Redis connections as requests
                # come. Run index `runs` is one no measured run uses (its own readers).
                self.wrk(item.scenario, runs, 1.0)
        for run in range(runs):
            for item in items:
                votes_before = item.stored() if item.stored else 0
                cpu_before, redis_before = item.server.cpu_seconds(), redis_cpu(self.rclient)
                result = self.wrk(item.scenario, run, self.args.duration, item.paced_ms)
                item.server_cpu += item.server.cpu_seconds() - cpu_before
                item.redis_cpu += redis_cpu(self.rclient) - redis_before
                if item.stored:
                    item.votes += item.stored() - votes_before
                item.results.append(result)
                log(f"run {run + 1}/{runs} {item.target:>20} "
                    f"{item.scenario.name + ('@half' if item.paced_ms else ''):<22}"
                    f"{result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  bad {result.bad}")


# -- Redis and engage data ----------------------------------------------------------------
@contextmanager
def redis_server(work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    directory = work / "redis"
    directory.mkdir()
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(directory), "--save", "", "--appendonly", "yes",
         "--appendfsync", "everysec", "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    try:
        yield url, process
    finally:
        process.terminate()
        process.wait(10)


def engage_env(redis_url: str, work: Path) -> dict[str, str]:
    return {
        "ENGAGE_REDIS_URL": redis_url,
        "ENGAGE_SECRET_KEY": SECRET,
        "ENGAGE_DATA_DIR": str(work),
        "ENGAGE_THROTTLE_VOTES": "1000000000",
        "ENGAGE_READER_MINT_LIMIT": "1000000 per minute",
    }


class EngageData:
    """Articles, tokens and links the scenarios use, written through engage itself.

    With `site`, under their own key prefix (`prefix`), the articles belong to a second
    site with its own origin and a three-choice set, beside the default site's (the
    two-site install `--two-sites` measures against the one-site one)."""

    def __init__(self, redis_url: str, work: Path, prefix: str = "engage",
                 site: str | None = None) -> None:
        self.app = create_app({
            "REDIS_URL": redis_url, "SECRET_KEY": SECRET, "DATA_DIR": str(work),
            "THROTTLE_VOTES": 10**9, "LOG_JSON": False, "REDIS_PREFIX": prefix,
        })
        # The fixtures' requests are not what is measured: no line for each.
        logging.getLogger("engage.request").setLevel(logging.WARNING)
        self.work = work
        self.site = site
        self.client = self.app.test_client()
        with self.app.app_context():
            self.admin = tokens.create(get_store(), "admin", "bench")[0]
        self.staff = {"Authorization": f"Bearer {self.admin}"}
        if site:
            response = self.client.post("/api/v1/sites", headers=self.staff, json={
                "name": site, "origins": [SECOND_ORIGIN],
                "reactions": {"choices": ["yes", "no", "unsure"], "reason_choice": "no",
                              "reasons": ["outdated", "inaccurate"]}})
            assert response.status_code == 201, response.json
        self.batch_ids = [f"b{n:03d}" for n in range(100)]
        for article_id in ["bench-read", "bench-vote", *self.batch_ids]:
            self.put_article(article_id)
        self.link_id: str | None = None
        response = self.client.put(
            "/api/v1/articles/bench-read/links", headers=self.staff,
            json=[{"title": "Policy Link", "url": "https://example.org/policy"}],
        )
        if response.status_code == 200 and response.json and response.json.get("links"):
            self.link_id = response.json["links"][0]["id"]
        # A few real votes so the read carries counts.
        with self.app.app_context():
            store = get_store()
            for n in range(50):
                reactions.vote(store, "bench-read", f"seed{n}", "seed", "yes" if n % 3 else "no")
        # The widget bundle's article has a poll too (with results shown to everyone).
        response = self.client.post("/api/v1/polls", headers=self.staff, json={
            "question": "Will the talks last?", "options": ["Yes", "No", "Too early to say"],
            "article": "bench-read", "results": "always"})
        assert response.status_code == 201 and response.json, response.json
        poll_id = response.json["id"]
        with self.app.app_context():
            store = get_store()
            for n in range(30):
                polls.vote(store, poll_id, f"seed{n}", "seed", [f"o{n % 3 + 1}"])

    def put_article(self, article_id: str) -> None:
        body = {**ARTICLE, "site": self.site} if self.site else ARTICLE
        response = self.client.put(f"/api/v1/articles/{article_id}", json=body,
                                   headers=self.staff)
        assert response.status_code in (200, 201), response.json

    def mint(self, n: int) -> list[str]:
        with self.app.app_context():
            identity = get_identity()
            return [identity.mint_reader() for _ in range(n)]

    def token_file(self, name: str, n: int) -> Path:
        path = self.work / f"{name}.txt"
        path.write_text("\n".join(self.mint(n)) + "\n")
        return path

    def prevote(self, article_id: str, token_path: Path) -> None:
        """Every token in the file votes "yes" on the article (the change pool)."""
        self.put_article(article_id)
        with self.app.app_context():
            store, identity = get_store(), get_identity()
            for token in token_path.read_text().split():
                reactions.vote(store, article_id, identity.reader_from_token(token),
                               "bench", "yes")

    def etag(self, base: str, headers: dict[str, str]) -> str:
        response = requests.get(f"{base}/api/v1/articles/bench-read/reactions",
                                headers=headers, timeout=5)
        return response.headers["ETag"]


def memory_per_voter(redis_url: str, work: Path, voters: int) -> dict[str, Any]:
    """Redis memory of one article after `voters` distinct votes, through the vote script."""
    app = create_app({"REDIS_URL": redis_url, "SECRET_KEY": SECRET, "DATA_DIR": str(work),
                      "THROTTLE_VOTES": 10**9, "LOG_JSON": False})
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with app.app_context():
        store = get_store()
        identity = get_identity()
        response = app.test_client().put(
            "/api/v1/articles/bench-memory", json=ARTICLE,
            headers={"Authorization": "Bearer " + tokens.create(store, "admin", "m")[0]},
        )
        assert response.status_code == 201
        started = time.process_time()
        for n in range(voters):
            reader = identity.reader_from_token(identity.mint_reader())
            reactions.vote(store, "bench-memory", reader, f"addr{n % 50}",
                           "yes" if n % 4 else "no", None if n % 8 else None)
        python_cpu = time.process_time() - started
        keys = store.keys
        voters_key = keys.article_voters("bench-memory")
        count = client.hlen(voters_key)
        voters_bytes = int(client.memory_usage(voters_key, samples=0) or 0)
        everything = 0
        per_key: dict[str, int] = {}
        for key in client.scan_iter(match=keys.article("bench-memory") + "*", count=1000):
            size = int(client.memory_usage(key, samples=0) or 0)
            everything += size
            kind = key.split("}", 1)[1] or "(article)"
            kind = re.sub(r":(h|d):\d+$", r":\1:<bucket>", kind)
            kind = re.sub(r":thr:.*$", ":thr:<addr>", kind)
            per_key[kind] = per_key.get(kind, 0) + size
    return {
        "voters": count,
        "voters_hash_bytes": voters_bytes,
        "bytes_per_voter": round(voters_bytes / count, 1),
        "article_bytes_all_keys": everything,
        "all_keys_bytes_per_voter": round(everything / count, 1),
        "bytes_by_key": per_key,
        "encoding": client.object("encoding", voters_key),
        "in_process_vote_cpu_us": round(python_cpu / voters * 1e6, 1),
    }


# -- an older commit ------------------------------------------------------------------------
def resolve_commit(ref: str) -> str | None:
    """The full id of `ref` (any git revision: HEAD~5, a tag, a sha), or None."""
    found = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet",
                            ref + "^{commit}"], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def unpack_commit(sha: str, work: Path) -> tuple[str, Path]:
    """The tree of commit `sha` in a directory under `work`; its short id."""
    tree = work / f"tree-{sha[:12]}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", sha],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return sha[:7], tree


# -- isso ---------------------------------------------------------------------------------
def ensure_isso() -> Path | None:
    """isso's own environment, with gunicorn to run it."""
    python = ISSO_VENV / "bin" / "python"
    if not python.exists():
        log("installing isso into bench/.isso-venv")
        subprocess.run([sys.executable, "-m", "venv", str(ISSO_VENV)], check=True)
    probe = "import isso, gunicorn"
    if subprocess.run([str(python), "-c", probe], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "isso", "gunicorn"],
                       check=True)
    ready = subprocess.run([str(python), "-c", probe], capture_output=True)
    return python if ready.returncode == 0 else None


def isso_likes(dbfile: Path) -> int:
    """Likes isso has stored, over all comments."""
    with sqlite3.connect(dbfile) as db:
        return int(db.execute("SELECT COALESCE(SUM(likes), 0) FROM comments").fetchone()[0])


# -- machine --------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in ("flask", "werkzeug", "granian", "gunicorn", "redis", "hiredis"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    redis_version = subprocess.run([redis_server_binary(), "--version"], capture_output=True,
                                   text=True).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    isso_version = None
    if (ISSO_VENV / "bin" / "python").exists():
        isso_version = subprocess.run(
            [str(ISSO_VENV / "bin" / "python"), "-c",
             "from importlib.metadata import version; print(version('isso'))"],
            capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "wrk": (wrk_version.stdout + wrk_version.stderr).splitlines()[0],
        "isso": isso_version,
        **versions,
    }


# -- the run --------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s")
    parser.add_argument("--runs", type=int, default=5, help="rounds")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per figure")
    parser.add_argument("--workers", type=int, default=SERVE_WORKERS,
                        help="workers of every server (default: as `engage serve`)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--voters", type=int, default=100_000,
                        help="votes on one article for the memory figure")
    parser.add_argument("--no-isso", action="store_true")
    parser.add_argument("--headline", action="store_true",
                        help="only the CPU headline: engage's bundle, read, batch, vote and "
                             "/metrics, the two bare views (no isso, layers, half peak, memory)")
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--two-sites", action="store_true",
                        help="also run engage with its articles on a second site (its own "
                             "origin and reaction set), every request from a publisher page, "
                             "and report it side by side with the one-site install")
    parser.add_argument("--compare", metavar="REF",
                        help="also run this git commit's engage, as its own `engage serve` "
                             "runs it, and report it side by side with the working tree")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration = 3, 3.0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.compare and args.two_sites:
        print("--compare and --two-sites: one comparison per run", file=sys.stderr)
        return 2
    compare_sha = resolve_commit(args.compare) if args.compare else None
    if args.compare and compare_sha is None:
        print(f"--compare {args.compare}: not a commit of this repository", file=sys.stderr)
        return 2

    info = machine()
    log(f"machine: {info['nproc']} cpu {info['cpu']}, {info['memory_gib']} GiB; "
        f"workers {args.workers}, wrk -t{args.threads} -c{args.connections}, "
        f"{args.runs} x {args.duration} s")
    work = Path(tempfile.mkdtemp(prefix="engage-bench-"))
    figures: list[Figure] = []
    memory: dict[str, Any] = {}
    servers: list[Server] = []
    started = time.time()
    compare_label = (f"engage@{compare_sha[:7]}" if compare_sha
                     else TWO_SITES if args.two_sites else None)
    try:
        with redis_server(work) as (redis_url, _redis_process):
            data = EngageData(redis_url, work)
            rclient = redis.Redis.from_url(redis_url, decode_responses=True)
            bench = Bench(args, work, rclient)
            env = engage_env(redis_url, work)
            if args.two_sites:  # the default site's origin: where the one-site requests come from
                env["ENGAGE_ALLOWED_ORIGINS"] = ARTICLE_ORIGIN
            # Every vote run gets a file of readers never seen before (enough for 5,000
            # votes/s), minted before wrk starts, so every vote request is a first vote.
            est_tokens = int(args.duration * 5000) + 1000
            fresh = itertools.count()
            change_pool = data.token_file("change", 4000)

            def vote_tokens(run: int) -> list[str]:
                path = data.token_file(f"vote{next(fresh)}", est_tokens)
                return [str(path), str(args.threads)]

            def change_tokens(article: str, fixtures: EngageData) -> Callable[[int], list[str]]:
                def before_run(run: int) -> list[str]:
                    # Each run moves the votes of the pool on its own, freshly voted article.
                    fixtures.prevote(f"{article}-{run}", change_pool)
                    return [str(change_pool), str(args.threads)]
                return before_run

            def engage_target(label: str, tree: Path, *options: str,
                              fixtures: EngageData = data) -> list[Item]:
                """engage from `tree`, as that tree's `engage serve` runs it, on the
                articles of `fixtures` (and their key prefix)."""
                slug = re.sub(r"[^a-z0-9]+", "-", label.lower())
                metrics_dir = work / f"metrics-{slug}"
                metrics_dir.mkdir()
                prefix = fixtures.app.config["REDIS_PREFIX"]
                server = start_server(
                    slug, engage_serve_args(args.workers, *options),
                    {**env, "PYTHONPATH": str(tree), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                     "ENGAGE_REDIS_PREFIX": prefix},
                    work, ready_path="/healthz")
                servers.append(server)
                base, api = server.url, server.url + "/api/v1"
                # With --two-sites, every request comes from its site's publisher page
                # (CORS answered), in the one-site install as in the two-site one.
                origin = ({"Origin": SECOND_ORIGIN if fixtures.site else ARTICLE_ORIGIN}
                          if args.two_sites else {})
                scenarios = [
                    Scenario("reactions_read", f"{api}/articles/bench-read/reactions",
                             headers=origin),
                    Scenario("revalidate_304", f"{api}/articles/bench-read/reactions",
                             headers={**origin, "If-None-Match": fixtures.etag(base, origin)}),
                    Scenario("batch_100", f"{api}/reactions?" + "&".join(
                        f"article={a}" for a in fixtures.batch_ids), headers=origin),
                    Scenario("vote_new_reader", f"{api}/articles/bench-vote/reactions/mine",
                             lua=LUA_VOTE, before_run=vote_tokens, headers=origin),
                    Scenario("vote_change",
                             f"{api}/articles/bench-change-{slug}-{{run}}/reactions/mine",
                             lua=LUA_CHANGE, headers=origin,
                             before_run=change_tokens(f"bench-change-{slug}", fixtures)),
                ]
                bundle = f"{api}/widget?article=bench-read"
                if requests.get(bundle, timeout=5).status_code == 200:
                    # What every page view asks: one article with its links and a poll.
                    scenarios.append(Scenario("widget_bundle", bundle, headers=origin))
                if data.link_id:
                    scenarios.append(Scenario("redirect_r", f"{base}/r/{data.link_id}"))
                if requests.get(base + "/metrics", timeout=5).status_code == 200:
                    scenarios.append(Scenario("metrics_scrape", base + "/metrics"))
                if requests.get(base + "/widget.js", timeout=5).status_code == 200:
                    scenarios.append(Scenario("widget_js", base + "/widget.js"))
                if args.headline:
                    scenarios = [sc for sc in scenarios if sc.name in HEADLINE_SCENARIOS]
                def voters() -> int:
                    return int(rclient.hlen(f"{prefix}:a:{{bench-vote}}:voters"))

                return [Item(label, sc, server,
                             stored=voters if sc.name == "vote_new_reader" else None)
                        for sc in scenarios]

            # Every server up at once; idle ones cost nothing while another is measured.
            items = engage_target("engage", REPO)
            if args.two_sites:
                log("two sites: the same engage with the articles on a second site")
                items += engage_target(TWO_SITES, REPO, fixtures=EngageData(
                    redis_url, work, prefix="engage2", site="second"))
            if compare_sha and compare_label:
                short, tree = unpack_commit(compare_sha, work)
                log(f"comparing with {args.compare} ({short}), unpacked in {tree}")
                items += engage_target(compare_label, tree)
            bench_path = {"PYTHONPATH": str(BENCH)}
            const = start_server("flask-const", gunicorn_sync_args(
                "baselines.flask_const:app", args.workers), bench_path, work)
            servers.append(const)
            items.append(Item("flask constant", Scenario("constant_json", const.url + "/"),
                              const))
            rclient.delete("base:{a}:voters", "base:{a}:counts")
            evalsha = start_server("flask-evalsha", gunicorn_sync_args(
                "baselines.flask_evalsha:app", args.workers),
                {**bench_path, "BENCH_REDIS_URL": redis_url}, work,
                ready_path="/vote", ready_method="OPTIONS")
            servers.append(evalsha)
            items.append(Item("flask EVALSHA", Scenario("evalsha_vote", evalsha.url + "/vote",
                                                        lua=LUA_VOTE, before_run=vote_tokens),
                              evalsha, stored=lambda: rclient.hlen("base:{a}:voters")))
            # engage's app-wide layers around views that do no work of their own, under
            # `engage serve`'s granian settings: the floor any engage view stands on.
            if not args.headline:
                layers_metrics = work / "metrics-engage-layers"
                layers_metrics.mkdir()
                layers = start_server(
                    "engage-layers", [sys.executable, str(BENCH / "engage_layers.py"),
                                      "--bind", "127.0.0.1:{port}", "--workers", str(args.workers)],
                    {**env, "PYTHONPATH": os.pathsep.join([str(REPO), str(BENCH)]),
                     "PROMETHEUS_MULTIPROC_DIR": str(layers_metrics)},
                    work, ready_path="/healthz")
                servers.append(layers)
                items.append(Item("engage layers", Scenario(
                    "constant_json", layers.url + "/api/v1/bench/constant"), layers))
                rclient.delete("layers:{a}:voters", "layers:{a}:counts")
                items.append(Item("engage layers", Scenario(
                    "evalsha_vote", layers.url + "/api/v1/bench/vote", lua=LUA_VOTE,
                        before_run=vote_tokens), layers,
                    stored=lambda: rclient.hlen("layers:{a}:voters")))
            isso_python = None if args.no_isso or args.headline else ensure_isso()
            if isso_python:
                comments = 2000
                cfg, dbfile = work / "isso.cfg", work / "isso.db"
                subprocess.run([str(isso_python), str(BENCH / "isso_setup.py"), str(cfg),
                                str(dbfile), str(comments)], check=True, capture_output=True)
                isso = start_server("isso", gunicorn_sync_args(
                    "isso.run:application", args.workers, python=str(isso_python)),
                    {"ISSO_SETTINGS": str(cfg)}, work, ready_path="/config")
                servers.append(isso)
                items.append(Item("isso", Scenario("isso_count", isso.url + "/count",
                                                   lua=LUA_POST_JSON, lua_args=['["/post"]']),
                                  isso))
                items.append(Item("isso", Scenario(
                    "isso_like", isso.url + "/", lua=LUA_ISSO_LIKE, lua_args=[str(comments)],
                    before_run=lambda run: [str(run), str(args.threads)]), isso,
                    stored=lambda: isso_likes(dbfile)))
            else:
                log("isso skipped")
            log(f"{len(items)} figures x {args.runs} runs x {args.duration:g} s")
            bench.rounds(items, args.runs)
            figures += [item.figure() for item in items]

            # p99 of each engage's read and vote at half its own peak, again round-robin.
            peaks = {(f.target, f.scenario): f.rps for f in figures}
            paced = []
            for item in items:
                if args.headline:
                    break
                if item.target.startswith("engage") and item.scenario.name in (
                        "reactions_read", "vote_new_reader"):
                    pause = bench.pause_for(item.scenario,
                                            peaks[(item.target, item.scenario.name)] / 2)
                    paced.append(Item(item.target, item.scenario, item.server,
                                      stored=item.stored, paced_ms=pause))
            bench.rounds(paced, args.runs)
            figures += [item.figure() for item in paced]
            for server in servers:
                server.stop()

            if not args.headline:
                log(f"memory: {args.voters} votes on one article")
                memory = memory_per_voter(redis_url, work, args.voters)
                log(f"memory: {memory['bytes_per_voter']} bytes per voter in the voters hash, "
                    f"{memory['all_keys_bytes_per_voter']} with every key of the article")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    report = build_report(args, info, figures, memory, time.time() - started, compare_label)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
             + ("-headline" if args.headline else ""))
    (out / f"{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stamp}.md").write_text(report["markdown"])
    shutil.copy(out / f"{stamp}.json", out / "latest.json")
    shutil.copy(out / f"{stamp}.md", out / "latest.md")
    print(report["markdown"])
    return 0


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# The headline, issue 30's targets: server CPU per request (all of a server's processes,
# over every measured round) of engage's page-view requests against the bare views in
# the same run: (name, engage's figure, the reference figure, the most ratio allowed).
CPU_TARGETS = (
    ("widget bundle (one article, links and a poll) / bare Flask constant JSON",
     ("engage", "widget_bundle"), ("flask constant", "constant_json"), 2.0),
    ("anonymous read / bare Flask constant JSON", ("engage", "reactions_read"),
     ("flask constant", "constant_json"), 1.5),
    ("vote / bare Flask EVALSHA", ("engage", "vote_new_reader"),
     ("flask EVALSHA", "evalsha_vote"), 1.6),
    ("batch of 100 / one anonymous read", ("engage", "batch_100"),
     ("engage", "reactions_read"), 1.6),
)
# Absolute CPU per request: (name, figure, the most µs allowed).
CPU_LIMITS = (("`/metrics` scrape", ("engage", "metrics_scrape"), 3000.0),)
# Throughput against isso: (name, engage's figure, isso's, the least req/s ratio).
RATE_TARGETS = (
    ("vote / isso like", ("engage", "vote_new_reader"), ("isso", "isso_like"), 3.0),
    ("anonymous read / isso count", ("engage", "reactions_read"), ("isso", "isso_count"), 3.0),
)
# Informative CPU ratios, no target: how far engage's app-wide layers alone (bench/
# engage_layers.py) stand from the bare views, and what engage's views add on top of them.
FLOOR = (
    ("engage layers, constant view / bare Flask constant JSON",
     ("engage layers", "constant_json"), ("flask constant", "constant_json")),
    ("anonymous read / engage layers, constant view", ("engage", "reactions_read"),
     ("engage layers", "constant_json")),
    ("engage layers, EVALSHA vote / bare Flask EVALSHA", ("engage layers", "evalsha_vote"),
     ("flask EVALSHA", "evalsha_vote")),
    ("vote / engage layers, EVALSHA vote", ("engage", "vote_new_reader"),
     ("engage layers", "evalsha_vote")),
)


def cpu_us(figure: Figure) -> float:
    """Server CPU per request, µs: every process of the server, every measured round."""
    return float(figure.extra["server_cpu_s"]) / max(int(figure.extra["requests"]), 1) * 1e6


def build_report(args: argparse.Namespace, info: dict[str, Any], figures: list[Figure],
                 memory: dict[str, Any], seconds: float,
                 compare_label: str | None = None) -> dict[str, Any]:
    by_key = {(f.target, f.scenario): f for f in figures}

    headline = []
    for name, ours, theirs, most in CPU_TARGETS:
        a, b = by_key.get(ours), by_key.get(theirs)
        if a is None or b is None:
            continue
        value = cpu_us(a) / cpu_us(b) if cpu_us(b) else None
        headline.append({
            "name": name, "engage_us": round(cpu_us(a)), "reference": b.target + " " + b.scenario,
            "reference_us": round(cpu_us(b)),
            "measured": None if value is None else round(value, 2), "target": most,
            "result": "n/a" if value is None else ("PASS" if value <= most else "FAIL"),
        })
    for name, ours, limit in CPU_LIMITS:
        if (a := by_key.get(ours)) is not None:
            headline.append({
                "name": name, "engage_us": round(cpu_us(a)), "reference": None,
                "reference_us": None, "measured": round(cpu_us(a)), "target": limit,
                "result": "PASS" if cpu_us(a) <= limit else "FAIL",
            })
    ratios = []
    for name, ours, theirs, least in RATE_TARGETS:
        a, b = by_key.get(ours), by_key.get(theirs)
        if a and b and b.rps:
            ratios.append({"name": name + " (req/s)", "measured": round(a.rps / b.rps, 2),
                           "target": least, "result": "PASS" if a.rps / b.rps >= least else "FAIL"})
    for name, ours, theirs in FLOOR:
        a, b = by_key.get(ours), by_key.get(theirs)
        if a and b and cpu_us(b):
            ratios.append({"name": name + " (CPU per request)",
                           "measured": round(cpu_us(a) / cpu_us(b), 2), "target": None,
                           "result": "info"})
    vote_cost = []
    for f in figures:
        if "server_cpu_ms_per_vote" not in f.extra:
            continue
        server_ms, redis_ms = f.extra["server_cpu_ms_per_vote"], f.extra["redis_cpu_ms_per_vote"]
        if f.target == "isso":  # SQLite, inside isso's processes
            redis_ms = None
        vote_cost.append({
            "target": f.target, "stored": f.extra["distinct_votes_stored"],
            "requests": f.extra["requests"], "server_cpu_ms_per_vote": server_ms,
            "redis_cpu_ms_per_vote": redis_ms,
            "server_over_redis": round(server_ms / redis_ms, 1) if redis_ms else None,
        })
    lines = [
        "# engage benchmark",
        "",
        f"`{shlex.join(['python', 'bench/run.py', *sys.argv[1:]])}` — "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.runs} rounds x {args.duration:g} s per "
        "figure (median; every round runs every figure once, so background load falls on all "
        f"alike), wrk -t{args.threads} -c{args.connections} on loopback. Every server has "
        f"{args.workers} workers: engage as `engage serve` runs it (granian {info['granian']}), "
        "the bare Flask views and isso under gunicorn sync; `engage layers` is engage's app "
        "with all its app-wide layers and two bench-only views (a constant body, one bare "
        "EVALSHA vote; bench/engage_layers.py) under the same granian settings"
        + (f"; `{TWO_SITES}` is the same engage with its articles on a second site (own "
           "origin and reaction set), and with it every request carries its site's Origin"
           if compare_label == TWO_SITES else
           f"; `{compare_label}` is that commit under its own `engage serve`" if compare_label
           else "")
        + f". Redis {info['redis_server'].split()[2]} with AOF (fsync every second).",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}, Flask {info['flask']}, "
        f"gunicorn {info['gunicorn']}, redis-py {info['redis']}, hiredis {info['hiredis']}, "
        f"isso {info['isso']}; load average at start {info['load_average_at_start']} "
        "(the CPUs are shared, so absolute numbers move between runs; ratios within one run "
        "are what the targets compare).",
        "",
        "## Headline: server CPU per request",
        "",
        "CPU time of all the server's processes over every measured round, per request.",
        "",
        "| figure | engage µs | reference | reference µs | ratio | target | result |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for h in headline:
        if h["reference"] is None:
            lines.append(f"| {h['name']} | {h['engage_us']:,} | - | - | - | "
                         f"<= {h['target']:,.0f} µs | {h['result']} |")
        else:
            lines.append(f"| {h['name']} | {h['engage_us']:,} | {h['reference']} | "
                         f"{h['reference_us']:,} | {h['measured']} | <= {h['target']} | "
                         f"{h['result']} |")
    lines += ["", "CPU per stored vote: the server's processes against redis-server's own "
              "(`used_cpu_user` + `used_cpu_sys` from `INFO cpu` before and after each run).", "",
              "| CPU per stored vote | votes stored / requests | server (all processes) ms "
              "| Redis ms | server / Redis |", "|---|---:|---:|---:|---:|"]
    for c in vote_cost:
        lines.append(f"| {c['target']} | {c['stored']:,} / {c['requests']:,} | "
                     f"{c['server_cpu_ms_per_vote']} | {c['redis_cpu_ms_per_vote'] or '-'} | "
                     f"{c['server_over_redis'] or '-'} |")
    lines += [
        "", "## Every figure", "",
        "| target | scenario | req/s | p50 ms | p99 ms | server CPU µs per request | failed |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(f"| {f.target} | {f.scenario} | {f.rps:,.0f} | {f.p50_ms:.2f} | "
                     f"{f.p99_ms:.2f} | {cpu_us(f):,.0f} | {f.bad} |")
    if ratios:
        lines += ["", "| other target (info: measured, no target) | measured | needed | result |",
                  "|---|---:|---:|---|"]
    for r in ratios:
        needed = "-" if r["target"] is None else f">= {r['target']}"
        lines.append(f"| {r['name']} | {r['measured']} | {needed} | {r['result']} |")
    half = [f for f in figures if f.scenario.endswith("@half")]
    if half:
        lines += ["", "| p99 at half peak | req/s | of peak | p50 ms | p99 ms |",
                  "|---|---:|---:|---:|---:|"]
    for f in half:
        scenario = f.scenario.removesuffix("@half")
        peak = by_key[(f.target, scenario)].rps
        lines.append(f"| {f.target} {scenario} | {f.rps:,.0f} | {f.rps / peak:.2f} | "
                     f"{f.p50_ms:.2f} | {f.p99_ms:.2f} |")
    if memory:
        lines += ["", f"Redis memory per voter ({memory['voters']:,} votes on one article): "
                      f"{memory['bytes_per_voter']} bytes in the voters hash, "
                      f"{memory['all_keys_bytes_per_voter']} with every key of the article "
                      "(events stream, stats buckets)."]
    compared = compare_rows(figures, compare_label) if compare_label else []
    if compared:
        then = compare_label
        lines += ["", "## One site vs two sites (`--two-sites`)", "",
                  f"Same run, same Redis, same workers, same code. `engage` serves one site, "
                  f"`{then}` the same articles on a second site beside the default one. The "
                  "ratio is one / two (req/s above 1: the one-site install is faster); server "
                  "CPU per request is given for both.", ""] if then == TWO_SITES else [
            "", f"## Working tree vs {then} (`--compare {args.compare}`)", "",
            f"Same run, same Redis, same workers. `engage` is the working tree under "
            f"`engage serve`, `{then}` that commit as its own `engage serve` ran it. The ratio "
            "is now / then (req/s above 1 is faster now); server CPU per request is given for "
            "both.", ""]
        lines += [
            f"| scenario | req/s engage | req/s {then} | "
            f"{'one / two' if then == TWO_SITES else 'now / then'} | p99 ms engage | "
            f"p99 ms {then} | CPU µs engage | CPU µs {then} | failed |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in compared:
            lines.append(
                f"| {row['scenario']} | {row['rps']:,.0f} | {row['rps_then']:,.0f} | "
                f"{row['rps_ratio']} | {row['p99_ms']:.2f} | {row['p99_ms_then']:.2f} | "
                f"{row['cpu_us']:,} | {row['cpu_us_then']:,} | {row['failed']} |")
    lines.append("")
    lines.append(f"Total benchmark time {seconds / 60:.1f} min.")
    markdown = "\n".join(lines) + "\n"
    return {
        "machine": info,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "figures": [asdict(f) for f in figures],
        "headline": headline,
        "ratios": ratios,
        "memory": memory,
        "vote_cost": vote_cost,
        "compare": {"ref": args.compare, "target": compare_label, "rows": compared}
        if compare_label else None,
        "markdown": markdown,
    }


def compare_rows(figures: list[Figure], then: str) -> list[dict[str, Any]]:
    """engage's figures beside the older commit's."""
    older = {f.scenario: f for f in figures if f.target == then}

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 2) if b else None

    rows = []
    for now in (f for f in figures if f.target == "engage" and "@" not in f.scenario):
        old = older.get(now.scenario)
        if old is None:
            continue
        rows.append({
            "scenario": now.scenario,
            "rps": now.rps, "rps_then": old.rps, "rps_ratio": ratio(now.rps, old.rps),
            "p99_ms": now.p99_ms, "p99_ms_then": old.p99_ms,
            "cpu_us": round(cpu_us(now)), "cpu_us_then": round(cpu_us(old)),
            "failed": now.bad + old.bad,
        })
    return rows


if __name__ == "__main__":
    sys.exit(main())
