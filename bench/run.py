"""engage benchmark: wrk on loopback against engage, two Flask baselines and isso.

    python bench/run.py --quick      # a few minutes: fewer, shorter runs
    python bench/run.py              # the full run: 5 runs of 8 s per figure + variants
    python bench/run.py --compare REF   # also an older commit of engage, side by side

Everything runs on this machine: a dedicated redis-server (AOF on, fsync every second,
as the embedded server), every app under gunicorn with the same worker count and
class, wrk from a second process. Each figure is the median of several runs. Results go
to bench/results/<stamp>.{json,md} and bench/results/latest.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
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
from engage.identity import get_identity  # noqa: E402
from engage.store import get_store, reactions, tokens  # noqa: E402
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


# -- helpers ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def wait_http(url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None,
              method: str = "GET", **kwargs: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited while starting: {url}")
        try:
            requests.request(method, url, timeout=1, **kwargs)
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
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class ServerKind:
    """How to run a WSGI app: gunicorn with a worker class, or granian."""

    label: str
    server: str = "gunicorn"
    worker_class: str = "sync"
    threads: int = 1
    env: dict[str, str] = field(default_factory=dict)


def start_wsgi(name: str, target: str, kind: ServerKind, workers: int, env: dict[str, str],
               work: Path, python: str = sys.executable, ready_path: str = "/",
               conf: Path | None = None, ready_method: str = "GET") -> Server:
    port = free_port()
    full_env = {**os.environ, **env, **kind.env}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (full_env.get("PYTHONPATH", ""), str(BENCH), str(REPO)) if p
    )
    if kind.server == "granian":
        module, _, attr = target.partition(":")
        args = [python, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(workers),
                "--blocking-threads", str(max(1, kind.threads)), "--log-level", "warning",
                "--no-ws", f"{module}:{attr}"]
        if attr.endswith("()"):
            args[-1] = f"{module}:{attr[:-2]}"
            args.insert(-1, "--factory")
    else:
        args = [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--worker-class", kind.worker_class,
                "--threads", str(kind.threads), "--log-level", "warning",
                "--backlog", "2048", "--keep-alive", "5"]
        if conf is not None:
            args += ["--config", str(conf)]
        args.append(target)
    logfile = open(work / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(args, cwd=work, env=full_env, stdout=logfile, stderr=logfile)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + ready_path, process=process, method=ready_method)
    return Server(name, url, process)


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
-- over many comments and give each request its own /24 through X-Forwarded-For.
local counter, n, comments = 0, 0, 1
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args) comments = tonumber(args[1]); n = tid * 1000003 end
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
    votes_key: str | None = None  # a voters hash whose growth counts distinct votes
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
        if self.votes_key and not self.paced_ms:
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

    def rounds(self, items: list[Item], runs: int) -> None:
        """Round-robin: every item once per round, so background load hits all alike."""
        for item in items:
            if item.scenario.before_run is None and not item.paced_ms:
                self.wrk(item.scenario, 0, 1.0)  # warm-up (votes would spend readers)
        for run in range(runs):
            for item in items:
                votes_before = self.rclient.hlen(item.votes_key) if item.votes_key else 0
                cpu_before, redis_before = item.server.cpu_seconds(), redis_cpu(self.rclient)
                result = self.wrk(item.scenario, run, self.args.duration, item.paced_ms)
                item.server_cpu += item.server.cpu_seconds() - cpu_before
                item.redis_cpu += redis_cpu(self.rclient) - redis_before
                if item.votes_key:
                    item.votes += self.rclient.hlen(item.votes_key) - votes_before
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
    """Articles, tokens and links the scenarios use, written through engage itself."""

    def __init__(self, redis_url: str, work: Path) -> None:
        self.app = create_app({
            "REDIS_URL": redis_url, "SECRET_KEY": SECRET, "DATA_DIR": str(work),
            "THROTTLE_VOTES": 10**9, "LOG_JSON": False,
        })
        self.work = work
        self.client = self.app.test_client()
        with self.app.app_context():
            self.admin = tokens.create(get_store(), "admin", "bench")[0]
        self.staff = {"Authorization": f"Bearer {self.admin}"}
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

    def put_article(self, article_id: str) -> None:
        response = self.client.put(f"/api/v1/articles/{article_id}", json=ARTICLE,
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

    def etag(self, base: str) -> str:
        response = requests.get(f"{base}/api/v1/articles/bench-read/reactions", timeout=5)
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
def ensure_isso(server: str) -> Path | None:
    """isso's own environment, with the server (gunicorn or granian) it is run under."""
    python = ISSO_VENV / "bin" / "python"
    if not python.exists():
        log("installing isso into bench/.isso-venv")
        subprocess.run([sys.executable, "-m", "venv", str(ISSO_VENV)], check=True)
    probe = f"import isso, {server}"
    if subprocess.run([str(python), "-c", probe], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "isso", server],
                       check=True)
    ready = subprocess.run([str(python), "-c", probe], capture_output=True)
    return python if ready.returncode == 0 else None


# -- machine --------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = {}
    for module in ("flask", "werkzeug", "gunicorn", "redis", "hiredis", "granian", "orjson"):
        try:
            versions[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            try:
                from importlib.metadata import version

                versions[module] = version(module)
            except Exception:
                versions[module] = None
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
    parser.add_argument("--quick", action="store_true", help="3 runs of 3 s, no variants")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1,
                        help="server workers, the same for every target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--voters", type=int, default=100_000,
                        help="votes on one article for the memory figure")
    parser.add_argument("--no-isso", action="store_true")
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--kind", default="sync",
                        help="main table's server: sync (as `engage serve`), gthread, granian")
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--compare", metavar="REF",
                        help="also run this git commit's engage (same server settings, same "
                             "Redis) and report it side by side with the working tree")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration, args.no_variants = 3, 3.0, True
        args.voters = min(args.voters, 100_000)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    compare_sha = resolve_commit(args.compare) if args.compare else None
    if args.compare and compare_sha is None:
        print(f"--compare {args.compare}: not a commit of this repository", file=sys.stderr)
        return 2

    kinds = {
        "sync": ServerKind("gunicorn sync", worker_class="sync"),
        "gthread": ServerKind("gunicorn gthread x4", worker_class="gthread", threads=4),
        "granian": ServerKind("granian wsgi", server="granian", threads=4),
    }
    main_kind = kinds[args.kind]
    info = machine()
    log(f"machine: {info['nproc']} cpu {info['cpu']}, {info['memory_gib']} GiB; "
        f"workers {args.workers}, wrk -t{args.threads} -c{args.connections}, "
        f"{args.runs} x {args.duration} s, server {main_kind.label}")
    work = Path(tempfile.mkdtemp(prefix="engage-bench-"))
    figures: list[Figure] = []
    memory: dict[str, Any] = {}
    per_vote: dict[str, Any] = {}
    servers: list[Server] = []
    started = time.time()
    try:
        with redis_server(work) as (redis_url, _redis_process):
            data = EngageData(redis_url, work)
            rclient = redis.Redis.from_url(redis_url, decode_responses=True)
            bench = Bench(args, work, rclient)
            env = engage_env(redis_url, work)
            # Every vote run gets a file of readers never seen before (enough for 5,000
            # votes/s), minted before wrk starts, so every vote request is a first vote.
            est_tokens = int(args.duration * 5000) + 1000
            fresh = itertools.count()
            change_pool = data.token_file("change", 4000)

            def vote_tokens(run: int) -> list[str]:
                path = data.token_file(f"vote{next(fresh)}", est_tokens)
                return [str(path), str(args.threads)]

            def change_tokens(run: int) -> list[str]:
                # Each run moves the votes of the pool on its own, freshly voted article.
                data.prevote(f"bench-change-{run}", change_pool)
                return [str(change_pool), str(args.threads)]

            def start(name: str, target: str, kind: ServerKind, extra_env: dict[str, str],
                      **kwargs: Any) -> Server:
                server = start_wsgi(name, target, kind, args.workers, extra_env, work,
                                    **kwargs)
                servers.append(server)
                return server

            def engage_server(label: str, kind: ServerKind,
                              extra_env: dict[str, str] | None = None,
                              tree: Path = REPO) -> Server:
                target = "bench_apps:engage_app()" if extra_env else "engage:create_app()"
                if kind.server == "granian":
                    target = "engage:create_app()"
                # Each server its own metrics directory: gunicorn.conf.py empties it on start.
                metrics_dir = work / ("metrics-" + label.replace(" ", "-"))
                metrics_dir.mkdir()
                extra = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **(extra_env or {})}
                if tree != REPO:
                    extra["PYTHONPATH"] = str(tree)  # ahead of the working tree's engage
                conf = tree / "gunicorn.conf.py"
                return start(label.replace(" ", "-"), target, kind, extra,
                             ready_path="/healthz",
                             conf=conf if kind.server == "gunicorn" and conf.exists() else None)

            def engage_items(label: str, server: Server, names: list[str] | None) -> list[Item]:
                base, api = server.url, server.url + "/api/v1"
                voters = "engage:a:{bench-vote}:voters"
                scenarios = [
                    Scenario("reactions_read", f"{api}/articles/bench-read/reactions"),
                    Scenario("revalidate_304", f"{api}/articles/bench-read/reactions",
                             headers={"If-None-Match": data.etag(base)}),
                    Scenario("batch_100", f"{api}/reactions?" + "&".join(
                        f"article={a}" for a in data.batch_ids)),
                    Scenario("vote_new_reader", f"{api}/articles/bench-vote/reactions/mine",
                             lua=LUA_VOTE, before_run=vote_tokens),
                    Scenario("vote_change", api + "/articles/bench-change-{run}/reactions/mine",
                             lua=LUA_CHANGE, before_run=change_tokens),
                ]
                if data.link_id:
                    scenarios.append(Scenario("redirect_r", f"{base}/r/{data.link_id}"))
                if requests.get(base + "/metrics", timeout=5).status_code == 200:
                    scenarios.append(Scenario("metrics_scrape", base + "/metrics"))
                if requests.get(base + "/widget.js", timeout=5).status_code == 200:
                    scenarios.append(Scenario("widget_js", base + "/widget.js"))
                return [
                    Item(label, sc, server,
                         votes_key=voters if sc.name == "vote_new_reader" else None)
                    for sc in scenarios if not names or sc.name in names
                ]

            # Every server up at once; idle ones cost nothing while another is measured.
            main = engage_server("engage", main_kind)
            items = engage_items("engage", main, None)
            compare_label = None
            if compare_sha:
                short, tree = unpack_commit(compare_sha, work)
                compare_label = f"engage@{short}"
                log(f"comparing with {args.compare} ({short}), unpacked in {tree}")
                items += engage_items(compare_label,
                                      engage_server(compare_label, main_kind, tree=tree), None)
            const = start("flask-const", "baselines.flask_const:app", main_kind, {})
            items.append(Item("flask constant", Scenario("constant_json", const.url + "/"),
                              const))
            rclient.delete("base:{a}:voters", "base:{a}:counts")
            evalsha = start("flask-evalsha", "baselines.flask_evalsha:app", main_kind,
                            {"BENCH_REDIS_URL": redis_url}, ready_path="/vote",
                            ready_method="OPTIONS")
            items.append(Item("flask EVALSHA", Scenario("evalsha_vote", evalsha.url + "/vote",
                                                        lua=LUA_VOTE, before_run=vote_tokens),
                              evalsha, votes_key="base:{a}:voters"))
            isso_python = None if args.no_isso else ensure_isso(main_kind.server)
            if isso_python:
                comments = 2000
                cfg, dbfile = work / "isso.cfg", work / "isso.db"
                subprocess.run([str(isso_python), str(BENCH / "isso_setup.py"), str(cfg),
                                str(dbfile), str(comments)], check=True, capture_output=True)
                isso = start("isso", "isso.run:application", main_kind,
                             {"ISSO_SETTINGS": str(cfg)}, python=str(isso_python),
                             ready_path="/config")
                items.append(Item("isso", Scenario("isso_count", isso.url + "/count",
                                                   lua=LUA_POST_JSON, lua_args=['["/post"]']),
                                  isso))
                items.append(Item("isso", Scenario("isso_like", isso.url + "/",
                                                   lua=LUA_ISSO_LIKE, lua_args=[str(comments)]),
                                  isso))
            else:
                log("isso skipped")
            if not args.no_variants:
                hot = ["reactions_read", "vote_new_reader"]
                variants: list[tuple[str, ServerKind, dict[str, str] | None, list[str]]] = [
                    (f"engage {key}", kind, None, hot) for key, kind in kinds.items()
                    if kind is not main_kind
                    and (kind.server != "granian" or has_module("granian"))
                ]
                variants.append(("engage no-hiredis", main_kind, {"BENCH_NO_HIREDIS": "1"},
                                 hot))
                if has_module("orjson"):
                    variants.append(("engage orjson", main_kind, {"BENCH_ORJSON": "1"}, hot))
                for label, kind, extra, names in variants:
                    items += engage_items(label, engage_server(label, kind, extra), names)
            log(f"{len(items)} figures x {args.runs} runs x {args.duration:g} s")
            bench.rounds(items, args.runs)
            figures += [item.figure() for item in items]

            # p99 at half of each peak (engage's read and vote), again round-robin.
            peaks = {(f.target, f.scenario): f.rps for f in figures}
            # The older commit gets the same offered load as the working tree, so the two
            # p99s compare directly.
            paced = []
            for item in items:
                if item.target in ("engage", compare_label) and item.scenario.name in (
                        "reactions_read", "vote_new_reader"):
                    rate = peaks[("engage", item.scenario.name)] / 2
                    pause = max(1, round(args.connections / rate * 1000))
                    paced.append(Item(item.target, item.scenario, item.server,
                                      votes_key=item.votes_key, paced_ms=pause))
            bench.rounds(paced, args.runs)
            figures += [item.figure() for item in paced]
            per_vote = next(f.extra for f in figures
                            if f.target == "engage" and f.scenario == "vote_new_reader")
            for server in servers:
                server.stop()

            log(f"memory: {args.voters} votes on one article")
            memory = memory_per_voter(redis_url, work, args.voters)
            log(f"memory: {memory['bytes_per_voter']} bytes per voter in the voters hash, "
                f"{memory['all_keys_bytes_per_voter']} with every key of the article")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    report = build_report(args, info, figures, memory, per_vote, main_kind.label,
                          time.time() - started, compare_label)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    (out / f"{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stamp}.md").write_text(report["markdown"])
    shutil.copy(out / f"{stamp}.json", out / ("latest-quick.json" if args.quick else
                                              "latest.json"))
    shutil.copy(out / f"{stamp}.md", out / ("latest-quick.md" if args.quick else "latest.md"))
    print(report["markdown"])
    return 0


def has_module(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def build_report(args: argparse.Namespace, info: dict[str, Any], figures: list[Figure],
                 memory: dict[str, Any], per_vote: dict[str, Any], kind: str,
                 seconds: float, compare_label: str | None = None) -> dict[str, Any]:
    def find(target: str, scenario: str) -> Figure | None:
        return next((f for f in figures if f.target == target and f.scenario == scenario), None)

    def ratio(a: Figure | None, b: Figure | None) -> float | None:
        return round(a.rps / b.rps, 2) if a and b and b.rps else None

    read, vote = find("engage", "reactions_read"), find("engage", "vote_new_reader")
    targets = [
        ("reactions read / constant JSON", ratio(read, find("flask constant", "constant_json")),
         ">= 0.85"),
        ("vote / bare EVALSHA", ratio(vote, find("flask EVALSHA", "evalsha_vote")), ">= 0.85"),
        ("vote / isso like", ratio(vote, find("isso", "isso_like")), ">= 1.5"),
        ("batch of 100 / single read", ratio(find("engage", "batch_100"), read), ">= 0.3"),
    ]
    half = find("engage", "reactions_read@half")
    vote_half = find("engage", "vote_new_reader@half")
    lines = [
        "# engage benchmark",
        "",
        f"`python bench/run.py{' --quick' if args.quick else ''}` — "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{args.runs} rounds x {args.duration:g} s per figure (median; every round runs "
        "every figure once, so background load falls on all alike), "
        f"wrk -t{args.threads} -c{args.connections} on loopback, every server "
        f"{args.workers} workers ({kind}), Redis {info['redis_server'].split()[2]} "
        "with AOF (fsync every second).",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}, Flask {info['flask']}, "
        f"gunicorn {info['gunicorn']}, redis-py {info['redis']}, hiredis {info['hiredis']}, "
        f"isso {info['isso']}; load average at start {info['load_average_at_start']} "
        "(the CPUs are shared, so absolute numbers move between runs; ratios within one run "
        "are what the targets compare).",
        "",
        "| target | scenario | req/s | p50 ms | p99 ms | failed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(f"| {f.target} | {f.scenario} | {f.rps:,.0f} | {f.p50_ms:.2f} | "
                     f"{f.p99_ms:.2f} | {f.bad} |")
    lines += ["", "| ratio | measured | target |", "|---|---:|---|"]
    for name, value, goal in targets:
        lines.append(f"| {name} | {value if value is not None else 'n/a'} | {goal} |")
    if half:
        lines.append(f"| reactions read p99 at half peak ({half.rps:,.0f} req/s) | "
                     f"{half.p99_ms:.2f} ms | < 25 ms |")
    if vote_half:
        lines.append(f"| vote p99 at half peak ({vote_half.rps:,.0f} req/s) | "
                     f"{vote_half.p99_ms:.2f} ms | < 25 ms |")
    if memory:
        lines.append(f"| Redis bytes per voter ({memory['voters']:,} votes, voters hash) | "
                     f"{memory['bytes_per_voter']} | <= 120 |")
        lines.append(f"| Redis bytes per voter, every key of the article (events, buckets) | "
                     f"{memory['all_keys_bytes_per_voter']} | (context) |")
    if per_vote:
        lines.append(f"| server CPU per vote (all workers) | "
                     f"{per_vote.get('server_cpu_ms_per_vote')} ms | (context) |")
        lines.append(f"| Redis CPU per vote | {per_vote.get('redis_cpu_ms_per_vote')} ms | "
                     "(context) |")
    compared = compare_rows(figures, compare_label) if compare_label else []
    if compared:
        lines += [
            "", f"## Working tree vs {compare_label} (`--compare {args.compare}`)", "",
            "Same run, same Redis, same server settings; ratio = working tree / older "
            "commit (req/s above 1 is faster now, p99 below 1 is better now).", "",
            f"| scenario | req/s now | req/s {compare_label} | ratio | p99 ms now | "
            f"p99 ms {compare_label} | ratio | failed |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in compared:
            lines.append(
                f"| {row['scenario']} | {row['rps']:,.0f} | {row['rps_compared']:,.0f} | "
                f"{row['rps_ratio']} | {row['p99_ms']:.2f} | {row['p99_ms_compared']:.2f} | "
                f"{row['p99_ratio']} | {row['failed']} |")
    lines.append("")
    lines.append(f"Total benchmark time {seconds / 60:.1f} min.")
    markdown = "\n".join(lines) + "\n"
    return {
        "machine": info,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "server": kind,
        "figures": [asdict(f) for f in figures],
        "ratios": {name: {"measured": value, "target": goal} for name, value, goal in targets},
        "memory": memory,
        "vote_cost": per_vote,
        "compare": {"ref": args.compare, "target": compare_label, "rows": compared}
        if compare_label else None,
        "markdown": markdown,
    }


def compare_rows(figures: list[Figure], compare_label: str) -> list[dict[str, Any]]:
    """engage's figures beside the older commit's, scenario by scenario."""
    older = {f.scenario: f for f in figures if f.target == compare_label}
    rows = []
    for now in (f for f in figures if f.target == "engage"):
        then = older.get(now.scenario)
        if then is None:
            continue
        rows.append({
            "scenario": now.scenario,
            "rps": now.rps, "rps_compared": then.rps,
            "rps_ratio": round(now.rps / then.rps, 2) if then.rps else None,
            "p99_ms": now.p99_ms, "p99_ms_compared": then.p99_ms,
            "p99_ratio": round(now.p99_ms / then.p99_ms, 2) if then.p99_ms else None,
            "failed": now.bad + then.bad,
        })
    return rows


if __name__ == "__main__":
    sys.exit(main())
