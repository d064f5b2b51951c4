"""Which HTTP server engage should run under: gunicorn sync, gunicorn gthread and granian.

    python bench/servers.py                # ~5 minutes: slow clients held 30 s per server
    python bench/servers.py --quick        # ~2 minutes: slow clients held 10 s, one round

Everything runs on loopback against one redis-server this script starts (AOF on, as the
embedded one): the three servers with the same number of workers: granian through
`engage serve`, and gunicorn's own sync and gthread workers serving `engage:create_app()`
from its command line, as an operator would run engage under another WSGI server (with
the limits engage's gunicorn.conf.py set until engage shipped granian only, and a
multiprocess metrics directory). For each server:

  a  slow clients: 100 idle connections and 100 trickling ones (half send a header line
     a second, half a vote body a byte a second) held while /healthz and an anonymous
     read are probed on new connections: p99, failures, what the tricklers got, memory;
  b  throughput and p99 of anonymous reads and new-reader votes (wrk -t1 -c16), servers
     round-robin so background load falls on all alike; ratios to gunicorn sync;
  c  /metrics while reads and votes run and one worker is killed with SIGKILL, another
     with SIGTERM: counters never going down, live gauges of dead workers dropped;
  e  request log lines: one per request (each request carries its own X-Request-ID);
  f  what the server answers for requests it refuses itself;
  g  whether the server applies X-Forwarded-* on its own (ENGAGE_TRUSTED_PROXIES unset);
  d  SIGTERM while requests wait on a paused Redis: do they complete, how long the exit
     takes, which temporary directories are left (each server gets its own TMPDIR).

Results: bench/results/servers-<stamp>.{json,md} and servers-latest.{json,md}. Needs wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from run import (  # noqa: E402
    LUA_VOTE,
    EngageData,
    engage_env,
    free_port,
    log,
    parse_wrk,
    redis_server,
)

READ = "/api/v1/articles/bench-read/reactions"
VOTE = "/api/v1/articles/bench-vote/reactions/mine"
GRACEFUL_S = 20  # engage.server.GRACEFUL_TIMEOUT, given to gunicorn too


# -- servers --------------------------------------------------------------------------------
@dataclass
class Candidate:
    name: str
    args: list[str]  # with {port}
    work: Path
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    logfile: Path = field(init=False)

    def __post_init__(self) -> None:
        self.logfile = self.work / f"{self.slug}.log"

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tmpdir(self) -> Path:
        return self.work / f"tmp-{self.slug}"

    def start(self) -> None:
        self.port = free_port()
        self.tmpdir.mkdir(exist_ok=True)
        given = self.env.get("PROMETHEUS_MULTIPROC_DIR")
        if given:  # emptied, as `engage serve` empties the one it is given
            shutil.rmtree(given, ignore_errors=True)
            os.makedirs(given)
        env = {**self.env, "TMPDIR": str(self.tmpdir)}
        args = [a.replace("{port}", str(self.port)) for a in self.args]
        with open(self.logfile, "ab") as out:
            self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.logfile.read_text()[-2000:]
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{self.name} did not start")
        self.wait_workers()

    def workers(self) -> list[int]:
        assert self.process is not None
        try:
            # Not multiprocessing's resource tracker, beside granian's spawned workers.
            return sorted(c.pid for c in psutil.Process(self.process.pid).children()
                          if c.status() != psutil.STATUS_ZOMBIE
                          and "resource_tracker" not in " ".join(c.cmdline()))
        except psutil.NoSuchProcess:
            return []

    def wait_workers(self, count: int = 0, exclude: int = 0, timeout: float = 30) -> float:
        """Seconds until `count` workers run (none of them `exclude`)."""
        count = count or WORKERS
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            pids = self.workers()
            if len(pids) == count and exclude not in pids:
                return time.monotonic() - started
            time.sleep(0.05)
        return float("inf")

    def rss_mib(self) -> float:
        assert self.process is not None
        total = 0
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
        return round(total / 2**20, 1)

    def metrics_dir(self) -> Path | None:
        if self.env.get("PROMETHEUS_MULTIPROC_DIR"):
            return Path(self.env["PROMETHEUS_MULTIPROC_DIR"])
        found = sorted(self.tmpdir.glob("engage-metrics-*"))
        return found[0] if found else None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(GRACEFUL_S + 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


WORKERS = 2


def candidates(work: Path, env: dict[str, str], gthread_threads: int) -> list[Candidate]:
    python = sys.executable
    # 8190: the longest request line gunicorn allows; its default (4094) refuses a batch
    # read of 100 ids over about 30 characters.
    gunicorn = [python, "-m", "gunicorn", "--workers", str(WORKERS), "--bind", "127.0.0.1:{port}",
                "--graceful-timeout", str(GRACEFUL_S), "--limit-request-line", "8190",
                "--forwarded-allow-ips", "", "--no-control-socket", "--log-level", "warning"]

    def metrics(slug: str) -> dict[str, str]:
        return {**env, "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{slug}")}

    return [
        Candidate("gunicorn sync", [*gunicorn, "engage:create_app()"], work, metrics("sync")),
        Candidate(f"gunicorn gthread x{gthread_threads}",
                  [*gunicorn, "-k", "gthread", "--threads", str(gthread_threads),
                   "engage:create_app()"], work, metrics("gthread")),
        Candidate("granian", [python, "-m", "engage.cli", "serve",
                              "--workers", str(WORKERS), "--bind", "127.0.0.1:{port}"],
                  work, env),
    ]


# -- helpers --------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


def timed_get(url: str, timeout: float = 5.0, **kwargs: Any) -> tuple[int, float]:
    """(status, ms) on a new connection; status 0 when no HTTP answer came."""
    started = time.perf_counter()
    try:
        status = requests.get(url, timeout=timeout, **kwargs).status_code
    except requests.RequestException:
        status = 0
    return status, (time.perf_counter() - started) * 1000


def scrape(url: str) -> dict[str, float]:
    text = requests.get(url + "/metrics", timeout=5).text
    found = {"accepted": 0.0, "requests": 0.0, "in_progress": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "engage_votes_accepted_total" and s.labels.get("kind") == "reaction":
                found["accepted"] = s.value
            elif s.name == "engage_http_requests_total":
                found["requests"] += s.value
            elif s.name == "engage_http_requests_in_progress":
                found["in_progress"] = s.value
    return found


class Voters:
    """Fresh reader tokens, one per vote, shared by threads."""

    def __init__(self, data: EngageData, n: int) -> None:
        self.tokens = iter(data.mint(n))
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            return next(self.tokens)


# -- a: slow clients ----------------------------------------------------------------------
class SlowClients:
    """Idle and trickling connections kept open (reopened when the server drops one)."""

    def __init__(self, port: int, idle: int, trickling: int) -> None:
        self.port = port
        self.idle: list[socket.socket | None] = [None] * idle
        self.trickle: list[dict[str, Any] | None] = [None] * trickling
        self.answers: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        except OSError:
            self._count("connect failed")
            return None
        sock.setblocking(False)
        return sock

    def _count(self, what: str) -> None:
        self.answers[what] = self.answers.get(what, 0) + 1

    def _check(self, sock: socket.socket, kind: str) -> bool:
        """False when the server answered or closed (the answer is counted)."""
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return True
        except OSError:
            self._count(f"{kind}: reset")
            return False
        if data:
            status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "?"
            self._count(f"{kind}: {status}")
        else:
            self._count(f"{kind}: closed without answer")
        sock.close()
        return False

    def _open_trickler(self, n: int) -> dict[str, Any] | None:
        sock = self._connect()
        if sock is None:
            return None
        kind = "header" if n % 2 == 0 else "body"
        if kind == "header":
            first = b"GET /healthz HTTP/1.1\r\n"
        else:
            first = (f"PUT {VOTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 20\r\n\r\n").encode()
        try:
            sock.send(first)
        except OSError:
            return None
        return {"sock": sock, "kind": kind, "sent": 0}

    def _run(self) -> None:
        while not self.stop.is_set():
            for i, sock in enumerate(self.idle):
                if sock is None or not self._check(sock, "idle"):
                    self.idle[i] = self._connect()
            for i, state in enumerate(self.trickle):
                if state is None or not self._check(state["sock"], state["kind"]):
                    self.trickle[i] = state = self._open_trickler(i)
                    if state is None:
                        continue
                piece = (b"X-Pad-%d: v\r\n" % state["sent"]) if state["kind"] == "header" \
                    else b" "
                try:
                    state["sock"].send(piece)
                    state["sent"] += 1
                except OSError:
                    pass
            self.stop.wait(1.0)
        for sock in self.idle:
            if sock:
                sock.close()
        for state in self.trickle:
            if state:
                state["sock"].close()

    def __enter__(self) -> SlowClients:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)


def slow_clients(server: Candidate, hold: float) -> dict[str, Any]:
    rss_before = server.rss_mib()
    probes: dict[str, list[tuple[int, float]]] = {"healthz": [], "read": []}
    rss_max = rss_before
    with SlowClients(server.port, 100, 100) as clients:
        time.sleep(2.0)  # every connection open and the first bytes sent
        until = time.monotonic() + hold
        last_rss = 0.0
        while time.monotonic() < until:
            probes["healthz"].append(timed_get(server.url + "/healthz", timeout=3))
            probes["read"].append(timed_get(server.url + READ, timeout=3))
            if time.monotonic() - last_rss > 1:
                rss_max, last_rss = max(rss_max, server.rss_mib()), time.monotonic()
            time.sleep(0.05)
        answers = dict(clients.answers)
    out: dict[str, Any] = {"hold_s": hold, "rss_mib_before": rss_before, "rss_mib_max": rss_max,
                           "slow_clients_got": answers}
    for name, results in probes.items():
        ok = [ms for status, ms in results if status == 200]
        out[name] = {"probes": len(results), "failed": len(results) - len(ok),
                     "p50_ms": percentile(ok, 0.5), "p99_ms": percentile(ok, 0.99),
                     "max_ms": round(max(ms for _, ms in results), 1)}
    return out


# -- b: throughput ------------------------------------------------------------------------
def wrk(url: str, seconds: float, work: Path, lua: str | None = None,
        lua_args: list[str] | None = None) -> dict[str, Any]:
    cmd = ["wrk", "-t1", "-c16", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    if lua:
        script = work / "vote.lua"
        script.write_text(lua)
        cmd += ["-s", str(script)]
    cmd.append(url)
    if lua_args:
        cmd += ["--", *lua_args]
    result = parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return {"rps": round(result.rps), "p99_ms": round(result.p99_ms, 2), "bad": result.bad}


def throughput(servers: list[Candidate], data: EngageData, rounds: int, seconds: float,
               work: Path) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s.name: {"read": [], "vote": []} for s in servers}
    for server in servers:
        wrk(server.url + READ, 1, work)  # warm-up
    for n in range(rounds):
        for server in servers:
            runs[server.name]["read"].append(wrk(server.url + READ, seconds, work))
            tokens = data.token_file(f"vote-{server.slug}-{n}", int(seconds * 4000) + 1000)
            runs[server.name]["vote"].append(
                wrk(server.url + VOTE, seconds, work, LUA_VOTE, [str(tokens), "1"]))
            log(f"round {n + 1}/{rounds} {server.name:>22}: "
                f"read {runs[server.name]['read'][-1]}  vote {runs[server.name]['vote'][-1]}")
    out: dict[str, Any] = {}
    for name, by_kind in runs.items():
        out[name] = {kind: {"rps": statistics.median(r["rps"] for r in rs),
                            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                            "bad": sum(r["bad"] for r in rs), "runs": rs}
                     for kind, rs in by_kind.items()}
    return out


# -- c: metrics across a worker's death -------------------------------------------------------
def metrics_across_kills(server: Candidate, data: EngageData) -> dict[str, Any]:
    voters = Voters(data, 20000)
    stop = threading.Event()
    statuses: dict[str, list[int]] = {"read": [], "vote": []}
    lock = threading.Lock()

    def load(kind: str) -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                if kind == "read":
                    status = session.get(server.url + READ, timeout=5).status_code
                else:
                    status = session.put(server.url + VOTE, json={"choice": "yes"}, timeout=5,
                                         headers={"X-Engage-Reader": voters.next()}).status_code
            except requests.RequestException:
                status = 0
            with lock:
                statuses[kind].append(status)

    scrapes: list[dict[str, float]] = []

    def scraper() -> None:
        while not stop.is_set():
            try:
                scrapes.append(scrape(server.url))
            except requests.RequestException:
                pass
            time.sleep(0.1)

    start = scrape(server.url)
    threads = [threading.Thread(target=load, args=(k,)) for k in ("read", "read", "vote", "vote")]
    threads.append(threading.Thread(target=scraper))
    for thread in threads:
        thread.start()
    kills = []
    first = server.workers()
    try:
        time.sleep(2)
        # Two different workers: granian stops altogether when the same worker dies again
        # within 5.5 s of being replaced (its crash-loop guard).
        for sig, victim in zip((signal.SIGKILL, signal.SIGTERM), first, strict=False):
            os.kill(victim, sig)
            replaced = server.wait_workers(exclude=victim)
            kills.append({"signal": sig.name, "replaced_after_s": round(replaced, 2)})
            time.sleep(2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    time.sleep(0.5)
    final = scrape(server.url)
    drops = {key: sum(1 for a, b in zip(scrapes, scrapes[1:], strict=False) if b[key] < a[key])
             for key in ("accepted", "requests")}
    live = set(server.workers())
    metrics_dir = server.metrics_dir()
    stale = []
    if metrics_dir is not None:
        for path in metrics_dir.glob("gauge_live*.db"):
            pid = int(path.stem.rpartition("_")[2])
            if not psutil.pid_exists(pid):
                stale.append(path.name)
    accepted_ok = statuses["vote"].count(200)
    return {
        "kills": kills,
        "scrapes": len(scrapes),
        "counter_decreases": drops,
        "votes_200": accepted_ok,
        "votes_accepted_metric": final["accepted"] - start["accepted"],
        "in_progress_after_idle": final["in_progress"],
        "stale_live_gauge_files": stale,
        "live_workers": len(live),
        "failed": {k: sum(1 for s in v if s not in (200, 304)) for k, v in statuses.items()},
        "requests": {k: len(v) for k, v in statuses.items()},
    }


# -- e, f, g ------------------------------------------------------------------------------------
def log_lines(server: Candidate, data: EngageData) -> dict[str, Any]:
    voter = data.mint(1)[0]
    tag = uuid.uuid4().hex[:8]
    sent = []
    for n in range(30):
        rid = f"bench-{tag}-{n}"
        headers = {"X-Request-ID": rid}
        kind = n % 5
        if kind == 0:
            requests.get(server.url + "/healthz", headers=headers, timeout=5)
        elif kind == 1:
            requests.get(server.url + READ, headers=headers, timeout=5)
        elif kind == 2:
            requests.put(server.url + VOTE, json={"choice": "yes"}, timeout=5,
                         headers={**headers, "X-Engage-Reader": voter})
        elif kind == 3:
            requests.get(server.url + "/no/such/page", headers=headers, timeout=5)
        else:
            requests.put(server.url + VOTE, data="{not json", timeout=5,
                         headers={**headers, "Content-Type": "application/json"})
        sent.append(rid)
    time.sleep(0.5)
    text = server.logfile.read_text(errors="replace")
    counts = [sum(1 for line in text.splitlines() if line.endswith(" " + rid)) for rid in sent]
    return {"requests": len(sent), "with_one_line": counts.count(1),
            "with_none": counts.count(0), "with_more": sum(1 for c in counts if c > 1)}


REFUSED = {
    "request line of 10 KB": b"GET /" + b"a" * 10_240 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "request line of 500 KB": b"GET /" + b"a" * 512_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "200 headers": b"GET " + READ.encode() + b" HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % n for n in range(200)) + b"\r\n",
    "one header of 20 KB": b"GET " + READ.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: "
    + b"a" * 20_480 + b"\r\n\r\n",
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    "space in a header name": b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    "NUL in a header value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "HTTP/7.1": b"GET / HTTP/7.1\r\nHost: x\r\n\r\n",
    "two Content-Lengths": b"PUT " + VOTE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n{}{}",
}


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and len(chunks) > 0:
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(body) >= length:
                    break
    return b"".join(chunks)


def refusals(server: Candidate) -> dict[str, Any]:
    out = {}
    for name, data in REFUSED.items():
        raw = exchange(server.port, data)
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict((k.strip().lower(), v.strip()) for k, _, v in
                       (line.partition(":") for line in lines[1:]))
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        out[name] = {"status": lines[0][9:12] if raw else "none",
                     "type": headers.get("content-type", "-"),
                     "body": f"JSON {code}" if code else f"{len(body)} bytes" if body else "empty",
                     "close": headers.get("connection") == "close"}
    return out


def forwarded_trust(server: Candidate) -> dict[str, Any]:
    response = requests.get(server.url + "/api/v1/articles/bench-read/links", timeout=5, headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Host": "forged.example"})
    hrefs = [link["href"] for link in response.json().get("links", [])]
    # engage's own links are relative (or under ENGAGE_PUBLIC_URL): a forged host or
    # scheme in one can only come from the server applying the headers.
    return {"href": hrefs[0] if hrefs else None,
            "server_applied_forwarded": bool(hrefs) and (
                "forged.example" in hrefs[0] or hrefs[0].startswith("https:"))}


# -- d: SIGTERM under load ------------------------------------------------------------------
def graceful_stop(server: Candidate, data: EngageData, redis_pid: int) -> dict[str, Any]:
    assert server.process is not None
    voters = Voters(data, 5000)
    outcomes: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(n: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                if n % 2:
                    status = requests.get(server.url + READ, timeout=10).status_code
                else:
                    status = requests.put(server.url + VOTE, json={"choice": "yes"}, timeout=10,
                                          headers={"X-Engage-Reader": voters.next()}).status_code
            except requests.RequestException:
                status = 0
                time.sleep(0.05)
            with lock:
                outcomes.append((started, status))

    threads = [threading.Thread(target=load, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    # Requests in flight: Redis paused (under engage's 1 s socket timeout), then SIGTERM.
    os.kill(redis_pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    time.sleep(0.3)
    term_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.4)
    os.kill(redis_pid, signal.SIGCONT)
    try:
        code = server.process.wait(GRACEFUL_S + 15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        code = server.process.wait(5)
    exit_s = time.monotonic() - term_at
    stop.set()
    for thread in threads:
        thread.join(15)
    before = [status for started, status in outcomes if started < term_at]
    # Sent in the 0.1 s before Redis paused: accepted by a worker and waiting on Redis
    # when SIGTERM came (later ones may still sit in the listen queue, which closes).
    in_flight = [status for started, status in outcomes if paused_at - 0.1 < started < paused_at]
    left = sorted(p.name for p in server.tmpdir.iterdir())
    return {"exit_s": round(exit_s, 2), "exit_code": code,
            "started_before_sigterm": len(before),
            "of_which_failed": sum(1 for s in before if s not in (200, 304)),
            "waiting_on_redis_at_sigterm": len(in_flight),
            "of_those_failed": sum(1 for s in in_flight if s not in (200, 304)),
            "temp_left": left}


# -- report --------------------------------------------------------------------------------------
def markdown(result: dict[str, Any]) -> str:
    names = list(result["servers"])
    base = result["throughput"][names[0]]
    rows = [
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def row(label: str, cell: Any) -> None:
        rows.append(f"| {label} | " + " | ".join(str(cell(n)) for n in names) + " |")

    slow = result["slow_clients"]
    row(f"a: /healthz p99 ms / failed ({slow[names[0]]['hold_s']:g} s, 100 idle + 100 trickling)",
        lambda n: f"{slow[n]['healthz']['p99_ms']} / {slow[n]['healthz']['failed']} of "
                  f"{slow[n]['healthz']['probes']}")
    row("a: read p99 ms / failed", lambda n: f"{slow[n]['read']['p99_ms']} / "
        f"{slow[n]['read']['failed']} of {slow[n]['read']['probes']}")
    row("a: what the tricklers got", lambda n: ", ".join(
        f"{k} x{v}" for k, v in sorted(slow[n]["slow_clients_got"].items())) or "nothing")
    row("a: RSS MiB before / max", lambda n: f"{slow[n]['rss_mib_before']} / "
        f"{slow[n]['rss_mib_max']}")
    tp = result["throughput"]
    for kind in ("read", "vote"):
        row(f"b: {kind} req/s (x gunicorn sync)", lambda n, k=kind: (
            f"{tp[n][k]['rps']:.0f} (x{tp[n][k]['rps'] / base[k]['rps']:.2f})"))
        row(f"b: {kind} p99 ms, failed", lambda n, k=kind: f"{tp[n][k]['p99_ms']}, "
            f"{tp[n][k]['bad']}")
    met = result["metrics"]
    row("c: workers replaced after SIGKILL / SIGTERM (s)", lambda n: " / ".join(
        str(k["replaced_after_s"]) for k in met[n]["kills"]))
    row("c: counter decreases seen in scrapes", lambda n: (
        f"{sum(met[n]['counter_decreases'].values())} in {met[n]['scrapes']}"))
    row("c: stale live-gauge files / in-progress when idle", lambda n: (
        f"{len(met[n]['stale_live_gauge_files'])} / {met[n]['in_progress_after_idle']:g}"))
    row("c: votes answered 200 / counted", lambda n: (
        f"{met[n]['votes_200']} / {met[n]['votes_accepted_metric']:g}"))
    row("c: failed reads, votes (of)", lambda n: (
        f"{met[n]['failed']['read']}, {met[n]['failed']['vote']} "
        f"({met[n]['requests']['read']}, {met[n]['requests']['vote']})"))
    stop = result["shutdown"]
    row("d: exit after SIGTERM (s), code", lambda n: f"{stop[n]['exit_s']}, {stop[n]['exit_code']}")
    row("d: waiting on Redis at SIGTERM / failed", lambda n: (
        f"{stop[n]['waiting_on_redis_at_sigterm']} / {stop[n]['of_those_failed']}"))
    row("d: temporary entries left", lambda n: ", ".join(stop[n]["temp_left"]) or "none")
    logs = result["log_lines"]
    row("e: requests with exactly one log line", lambda n: (
        f"{logs[n]['with_one_line']} of {logs[n]['requests']}"))
    ref = result["refusals"]
    for case in REFUSED:
        row(f"f: {case}", lambda n, c=case: (
            f"{ref[n][c]['status']} {ref[n][c]['body']}"
            + (" close" if ref[n][c]["close"] else "")))
    row("g: server applied X-Forwarded-Proto/Host (trusted proxies unset)",
        lambda n: "yes" if result["trust"][n]["server_applied_forwarded"] else "no")
    head = (f"# HTTP servers for engage ({result['stamp']})\n\n"
            f"`{result['command']}`; {result['machine']}; {WORKERS} workers each, one "
            f"redis-server; wrk -t1 -c16, {result['rounds']} round(s) of "
            f"{result['seconds']:g} s, median.\n\n")
    return head + "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="hold 10 s, one round of 5 s")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds of slow clients")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="wrk duration")
    parser.add_argument("--gthread-threads", type=int, default=8)
    parser.add_argument("--only", default="", help="comma-separated server names to run")
    parser.add_argument("--out", default=str(BENCH / "results"))
    args = parser.parse_args()
    if args.quick:
        args.hold, args.rounds, args.seconds = 10.0, 1, 5.0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"engage-servers-{os.getpid()}"
    work.mkdir()
    result: dict[str, Any] = {
        "stamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ"),
        "command": "python bench/servers.py" + " ".join([""] + sys.argv[1:]),
        "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        "rounds": args.rounds, "seconds": args.seconds,
    }
    servers: list[Candidate] = []
    try:
        with redis_server(work) as (redis_url, redis_process):
            data = EngageData(redis_url, work)
            env = {**os.environ, **engage_env(redis_url, work), "ENGAGE_LOG_JSON": "0"}
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            env.pop("ENGAGE_TRUSTED_PROXIES", None)
            env["PYTHONPATH"] = str(REPO)
            servers = candidates(work, env, args.gthread_threads)
            if args.only:
                wanted = args.only.split(",")
                servers = [s for s in servers if any(w in s.name for w in wanted)]
            for server in servers:
                server.start()
                log(f"{server.name} on {server.url}, workers {server.workers()}")
            result["servers"] = {s.name: " ".join(s.args) for s in servers}
            result["refusals"] = {s.name: refusals(s) for s in servers}
            result["trust"] = {s.name: forwarded_trust(s) for s in servers}
            result["log_lines"] = {s.name: log_lines(s, data) for s in servers}
            log("e/f/g done")
            result["throughput"] = throughput(servers, data, args.rounds, args.seconds, work)
            result["slow_clients"] = {}
            for server in servers:
                result["slow_clients"][server.name] = slow_clients(server, args.hold)
                log(f"slow clients {server.name}: {result['slow_clients'][server.name]}")
                # Give the server back its workers (gunicorn sync may have lost them).
                time.sleep(1)
            result["metrics"] = {}
            for server in servers:
                result["metrics"][server.name] = metrics_across_kills(server, data)
                log(f"metrics {server.name}: {result['metrics'][server.name]}")
            result["shutdown"] = {}
            for server in servers:
                result["shutdown"][server.name] = graceful_stop(server, data, redis_process.pid)
                log(f"shutdown {server.name}: {result['shutdown'][server.name]}")
    finally:
        for server in servers:
            server.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = markdown(result)
    for name in (f"servers-{stamp}", "servers-latest"):
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / f"{name}.md").write_text(text)
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
