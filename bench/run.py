"""engage benchmark: wrk on loopback against engage, two Flask baselines and isso.

    python bench/run.py --quick      # a few minutes: fewer, shorter runs
    python bench/run.py              # the full run: 5 runs of 8 s per figure + variants

Everything runs on this machine: a dedicated redis-server (AOF on, fsync every second,
as the embedded server), every app under gunicorn with the same worker count and
class, wrk from a second process. Each figure is the median of several runs. Results go
to bench/results/<stamp>.{json,md} and bench/results/latest.{json,md}.
"""

from __future__ import annotations

import argparse
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
LUA_VOTE = r"""
-- Every request is a new reader: each wrk thread takes its own share of a token file.
local counter, tokens, idx = 0, {}, 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args)
  local file, nthreads, i = args[1], tonumber(args[2]), 0
  for line in io.lines(file) do
    if i % nthreads == tid then tokens[#tokens + 1] = line end
    i = i + 1
  end
end
function request()
  idx = idx + 1
  if idx > #tokens then idx = 1 end
  return wrk.format("PUT", nil, {["Content-Type"] = "application/json",
    ["X-Engage-Reader"] = tokens[idx]}, '{"choice":"yes"}')
end
"""

LUA_CHANGE = r"""
-- A pool of readers who already voted "yes"; every request moves one reader's vote.
local counter, tokens, idx, pass = 0, {}, 0, 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args)
  local file, nthreads, i = args[1], tonumber(args[2]), 0
  for line in io.lines(file) do
    if i % nthreads == tid then tokens[#tokens + 1] = line end
    i = i + 1
  end
end
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


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.figures: list[Figure] = []

    def wrk(self, scenario: Scenario, run: int, duration: float,
            connections: int | None = None, paced_ms: int | None = None) -> WrkResult:
        connections = connections or self.args.connections
        cmd = ["wrk", "-t", str(self.args.threads), "-c", str(connections),
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
        cmd.append(scenario.url)
        if lua_args:
            cmd += ["--", *lua_args]
        output = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        return parse_wrk(output)

    def measure(self, scenario: Scenario, target: str, server: Server | None = None,
                runs: int | None = None, after: Callable[[], dict[str, Any]] | None = None,
                ) -> Figure:
        runs = runs or self.args.runs
        if scenario.before_run is None:  # votes spend tokens: no warm-up for them
            self.wrk(scenario, -1, 1.0)
        results: list[WrkResult] = []
        cpu_before = server.cpu_seconds() if server else 0.0
        for run in range(runs):
            results.append(self.wrk(scenario, run, self.args.duration))
        cpu = (server.cpu_seconds() - cpu_before) if server else 0.0
        figure = Figure(
            scenario=scenario.name, target=target,
            rps=statistics.median(r.rps for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            runs=[asdict(r) for r in results], bad=sum(r.bad for r in results),
        )
        figure.extra["server_cpu_s"] = round(cpu, 3)
        figure.extra["requests"] = sum(r.requests for r in results)
        if after:
            figure.extra.update(after())
        log(f"{target:>22} {scenario.name:<16} {figure.rps:9.0f} req/s  "
            f"p50 {figure.p50_ms:6.2f} ms  p99 {figure.p99_ms:6.2f} ms  bad {figure.bad}")
        self.figures.append(figure)
        return figure

    def paced(self, scenario: Scenario, target: str, peak_rps: float) -> Figure:
        """p99 at half the peak rate: each connection paced by wrk's delay()."""
        connections = self.args.connections
        pause = max(1, round(connections / (peak_rps / 2) * 1000))
        # Vote scenarios take fresh token files for the paced runs (offset by `runs`).
        results = [self.wrk(scenario, self.args.runs + run, self.args.duration, connections,
                            pause) for run in range(self.args.runs)]
        figure = Figure(
            scenario=scenario.name + "@half", target=target,
            rps=statistics.median(r.rps for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            runs=[asdict(r) for r in results], bad=sum(r.bad for r in results),
            extra={"pause_ms_per_connection": pause, "peak_rps": round(peak_rps)},
        )
        log(f"{target:>22} {figure.scenario:<16} {figure.rps:9.0f} req/s  "
            f"p50 {figure.p50_ms:6.2f} ms  p99 {figure.p99_ms:6.2f} ms  bad {figure.bad}")
        self.figures.append(figure)
        return figure


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
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
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


# -- isso ---------------------------------------------------------------------------------
def ensure_isso() -> Path | None:
    python = ISSO_VENV / "bin" / "python"
    if not python.exists():
        log("installing isso into bench/.isso-venv")
        subprocess.run([sys.executable, "-m", "venv", str(ISSO_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "isso", "gunicorn"],
                       check=True)
    probe = subprocess.run([str(python), "-c", "import isso, gunicorn"], capture_output=True)
    return python if probe.returncode == 0 else None


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
    parser.add_argument("--duration", type=float, default=8.0)
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
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration, args.no_variants = 3, 3.0, True
        args.voters = min(args.voters, 100_000)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
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
    bench = Bench(args, work)
    memory: dict[str, Any] = {}
    per_vote: dict[str, Any] = {}
    started = time.time()
    try:
        with redis_server(work) as (redis_url, redis_process):
            data = EngageData(redis_url, work)
            rclient = redis.Redis.from_url(redis_url, decode_responses=True)
            env = engage_env(redis_url, work)
            (work / "metrics").mkdir()
            # Enough fresh readers for every peak and paced run at up to 5,000 votes/s.
            est_tokens = int(args.duration * 5000) + 1000
            vote_files = [data.token_file(f"vote{n}", est_tokens) for n in range(2 * args.runs)]
            change_pool = data.token_file("change", 4000)

            def vote_tokens(run: int) -> list[str]:
                return [str(vote_files[max(run, 0)]), str(args.threads)]

            def change_tokens(run: int) -> list[str]:
                data.prevote(f"bench-change-{run}", change_pool)
                return [str(change_pool), str(args.threads)]

            def engage_scenarios(base: str, etag: str) -> dict[str, Scenario]:
                api = base + "/api/v1"
                scenarios = {
                    "reactions_read": Scenario("reactions_read",
                                               f"{api}/articles/bench-read/reactions"),
                    "revalidate_304": Scenario("revalidate_304",
                                               f"{api}/articles/bench-read/reactions",
                                               headers={"If-None-Match": etag}),
                    "batch_100": Scenario("batch_100", f"{api}/reactions?" + "&".join(
                        f"article={a}" for a in data.batch_ids)),
                    "vote_new_reader": Scenario("vote_new_reader",
                                                f"{api}/articles/bench-vote/reactions/mine",
                                                lua=LUA_VOTE, before_run=vote_tokens),
                }
                # Each run moves the votes of a pool on its own article.
                scenarios["vote_change"] = Scenario(
                    "vote_change", f"{api}/articles/bench-change-0/reactions/mine",
                    lua=LUA_CHANGE, before_run=change_tokens)
                if data.link_id:
                    scenarios["redirect_r"] = Scenario("redirect_r", f"{base}/r/{data.link_id}")
                if requests.get(base + "/metrics", timeout=5).status_code == 200:
                    scenarios["metrics_scrape"] = Scenario("metrics_scrape", base + "/metrics")
                if requests.get(base + "/widget.js", timeout=5).status_code == 200:
                    scenarios["widget_js"] = Scenario("widget_js", base + "/widget.js")
                return scenarios

            def run_engage(kind: ServerKind, label: str, names: list[str] | None = None,
                           extra_env: dict[str, str] | None = None) -> dict[str, Figure]:
                server = start_wsgi(
                    "engage-" + label.replace(" ", "-"),
                    "bench_apps:engage_app()" if extra_env else "engage:create_app()",
                    kind, args.workers, {**env, **(extra_env or {})}, work,
                    ready_path="/healthz", conf=REPO / "gunicorn.conf.py"
                    if kind.server == "gunicorn" else None,
                )
                out: dict[str, Figure] = {}
                try:
                    scenarios = engage_scenarios(server.url, data.etag(server.url))
                    for name, scenario in scenarios.items():
                        if names and name not in names:
                            continue
                        if name == "vote_change":
                            # The URL names the run's article: patch it per run.
                            out[name] = measure_change(server, scenario, label)
                            continue
                        voters_key = "engage:a:{bench-vote}:voters"
                        before_votes = rclient.hlen(voters_key)
                        redis_cpu_before = redis_cpu(rclient)
                        figure = bench.measure(scenario, label, server)
                        if name == "vote_new_reader":
                            votes = rclient.hlen(voters_key) - before_votes
                            figure.extra["distinct_votes_stored"] = votes
                            figure.extra["server_cpu_ms_per_vote"] = round(
                                figure.extra["server_cpu_s"] / max(votes, 1) * 1000, 3)
                            figure.extra["redis_cpu_ms_per_vote"] = round(
                                (redis_cpu(rclient) - redis_cpu_before) / max(votes, 1) * 1000,
                                4)
                        out[name] = figure
                    if not names or "reactions_read" in names:
                        bench.paced(scenarios["reactions_read"], label,
                                    out["reactions_read"].rps)
                    if not names or "vote_new_reader" in names:
                        bench.paced(scenarios["vote_new_reader"], label,
                                    out["vote_new_reader"].rps)
                finally:
                    server.stop()
                return out

            def measure_change(server: Server, scenario: Scenario, label: str) -> Figure:
                results = []
                cpu_before = server.cpu_seconds()
                for run in range(args.runs):
                    url = scenario.url.replace("bench-change-0", f"bench-change-{run}")
                    results.append(bench.wrk(Scenario(scenario.name, url, scenario.lua,
                                                      before_run=scenario.before_run),
                                             run, args.duration))
                figure = Figure(
                    scenario.name, label, statistics.median(r.rps for r in results),
                    statistics.median(r.p50_ms for r in results),
                    statistics.median(r.p99_ms for r in results),
                    [asdict(r) for r in results], sum(r.bad for r in results),
                    {"server_cpu_s": round(server.cpu_seconds() - cpu_before, 3)},
                )
                log(f"{label:>22} {scenario.name:<16} {figure.rps:9.0f} req/s  "
                    f"p50 {figure.p50_ms:6.2f} ms  p99 {figure.p99_ms:6.2f} ms  bad {figure.bad}")
                bench.figures.append(figure)
                return figure

            # 1. engage, every scenario, on the main server kind.
            main = run_engage(main_kind, "engage")
            per_vote = {k: v for k, v in main["vote_new_reader"].extra.items()}

            # 2. baselines on the same server settings.
            const = start_wsgi("flask-const", "baselines.flask_const:app", main_kind,
                               args.workers, {}, work)
            try:
                bench.measure(Scenario("constant_json", const.url + "/"), "flask constant",
                              const)
            finally:
                const.stop()
            rclient.delete("base:{a}:voters", "base:{a}:counts")
            evalsha = start_wsgi("flask-evalsha", "baselines.flask_evalsha:app", main_kind,
                                 args.workers, {"BENCH_REDIS_URL": redis_url}, work,
                                 ready_path="/vote", ready_method="OPTIONS")
            try:
                bench.measure(Scenario("evalsha_vote", evalsha.url + "/vote", lua=LUA_VOTE,
                                       before_run=vote_tokens), "flask EVALSHA", evalsha)
            finally:
                evalsha.stop()

            # 3. isso, the nearest peer, on the same server settings.
            isso_python = None if args.no_isso else ensure_isso()
            if isso_python:
                comments = 2000
                cfg, dbfile = work / "isso.cfg", work / "isso.db"
                subprocess.run([str(isso_python), str(BENCH / "isso_setup.py"), str(cfg),
                                str(dbfile), str(comments)], check=True, capture_output=True)
                isso = start_wsgi("isso", "isso.run:application", main_kind, args.workers,
                                  {"ISSO_SETTINGS": str(cfg)}, work, python=str(isso_python),
                                  ready_path="/config")
                try:
                    bench.measure(Scenario("isso_count", isso.url + "/count",
                                           lua=LUA_POST_JSON, lua_args=['["/post"]']),
                                  "isso", isso)
                    bench.measure(Scenario("isso_like", isso.url + "/", lua=LUA_ISSO_LIKE,
                                           lua_args=[str(comments)]), "isso", isso)
                finally:
                    isso.stop()
            else:
                log("isso skipped")

            # 4. alternatives: server kind, hiredis, JSON provider (read and vote only).
            if not args.no_variants:
                hot = ["reactions_read", "vote_new_reader"]
                for key, kind in kinds.items():
                    if kind is main_kind:
                        continue
                    if kind.server == "granian" and not has_module("granian"):
                        continue
                    run_engage(kind, f"engage {key}", hot)
                run_engage(main_kind, "engage no-hiredis", hot, {"BENCH_NO_HIREDIS": "1"})
                if has_module("orjson"):
                    run_engage(main_kind, "engage orjson", hot, {"BENCH_ORJSON": "1"})

            # 5. memory per voter after many votes on one article.
            log(f"memory: {args.voters} votes on one article")
            memory = memory_per_voter(redis_url, work, args.voters)
            log(f"memory: {memory['bytes_per_voter']} bytes per voter in the voters hash, "
                f"{memory['all_keys_bytes_per_voter']} with every key of the article")
            del redis_process
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = build_report(args, info, bench.figures, memory, per_vote, main_kind.label,
                          time.time() - started)
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
                 seconds: float) -> dict[str, Any]:
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
        f"{args.runs} runs x {args.duration:g} s per figure (median), "
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
        "markdown": markdown,
    }


if __name__ == "__main__":
    sys.exit(main())
