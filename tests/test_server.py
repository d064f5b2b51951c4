"""engage under its default server (`engage serve`: granian, 2 workers), as real processes.

Slow and idle clients, workers killed under load, SIGTERM under load, /metrics across
all of it, and what granian answers for the requests it refuses itself. Loopback only;
every test is bounded in time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.http import parse_date

from engage.identity import Identity
from engage.server import MetricsDirectory
from engage.store.embedded import EmbeddedRedis
from tests.processes import serving_workers
from tests.redis_server import RedisServer, free_port, stop_embedded

SECRET = "server-test-secret-key-0123456789"
ARTICLE = "served"
READ = f"/api/v1/articles/{ARTICLE}/reactions"
VOTE = f"/api/v1/articles/{ARTICLE}/reactions/mine"
GRACEFUL_S = 20  # engage.server.GRACEFUL_TIMEOUT
pytestmark = pytest.mark.slow


class Served:
    """`engage serve` in a subprocess with its own TMPDIR (to see what it leaves), on
    the Redis of `redis_url`, or on its embedded one when that is None."""

    def __init__(self, redis_url: str | None, tmp_path: Path, workers: int = 2,
                 **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ENGAGE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update({
            "TMPDIR": str(self.tmpdir),
            "ENGAGE_SECRET_KEY": SECRET,
            "ENGAGE_DATA_DIR": str(tmp_path),
            "ENGAGE_THROTTLE_VOTES": "1000000",
            "ENGAGE_LOG_JSON": "0",
        })
        if redis_url is not None:
            env["ENGAGE_REDIS_URL"] = redis_url
        env.update({f"ENGAGE_{k}": v for k, v in settings.items()})
        self.logfile = tmp_path / "server.log"
        with open(self.logfile, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engage.cli", "serve", "--workers", str(workers),
                 "--bind", f"127.0.0.1:{self.port}"], env=env, stdout=log, stderr=log)
        try:
            wait_for(self.healthy, 40)
            wait_for(lambda: len(self.workers()) == workers, 20)
        except BaseException:
            # No fixture gets this object to stop it: a server left running would go on
            # writing (its aggregates, its feeds) into Redis that later tests share.
            self.stop()
            raise

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.log()
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def workers(self) -> list[int]:
        return serving_workers(self.process.pid)

    def rss(self) -> int:
        root = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

    def metrics_dir(self) -> Path:
        (found,) = self.tmpdir.glob("engage-metrics-*")
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(GRACEFUL_S + 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def wait_for(predicate: Any, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.05)
    return time.monotonic() - started


def scrape(url: str) -> dict[str, float]:
    found = {"accepted": 0.0, "requests": 0.0, "in_progress": -1.0}
    text = requests.get(url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "engage_votes_accepted_total" and s.labels == {"kind": "reaction"}:
                found["accepted"] = s.value
            elif s.name == "engage_http_requests_total":
                found["requests"] += s.value
            elif s.name == "engage_http_requests_in_progress":
                found["in_progress"] = s.value
    return found


@pytest.fixture
def redis_for_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    client = server.client()
    client.hset(f"engage:a:{{{ARTICLE}}}", mapping={"title": "t", "url": "https://e.example/"})
    client.zadd("engage:articles", {ARTICLE: 0})
    yield server
    server.stop()


@pytest.fixture
def served(redis_for_server: RedisServer, tmp_path: Path) -> Iterator[Served]:
    server = Served(redis_for_server.url, tmp_path)
    yield server
    server.stop()


class Load:
    """Reads and new-reader votes from background threads, every outcome recorded."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.identity = Identity(SECRET, [])
        self.outcomes: list[tuple[float, str, int]] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n: int) -> None:
        # A new connection per request: only requests a dying worker holds can fail,
        # not a kept-alive connection it leaves behind.
        kind = "vote" if n % 2 else "read"
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                if kind == "read":
                    status = requests.get(self.url + READ, timeout=10).status_code
                else:
                    status = requests.put(
                        self.url + VOTE, json={"choice": "yes"}, timeout=10,
                        headers={"X-Engage-Reader": self.identity.mint_reader()}).status_code
            except requests.RequestException:
                status = 0
                time.sleep(0.02)
            with self.lock:
                self.outcomes.append((started, kind, status))

    def statuses(self, kind: str, since: float = 0.0) -> list[int]:
        with self.lock:
            return [s for t, k, s in self.outcomes if k == kind and t >= since]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(15)


# -- slow and idle clients --------------------------------------------------------------------
def test_idle_and_trickling_clients_do_not_slow_reads(served: Served) -> None:
    """100 idle and 100 trickling connections (50 sending a header line a second, 50 a
    12-byte vote body a byte a second), held 15 s here rather than 30 s: the counts are
    the issue's, and within 15 s every kind of slow client has met its deadline (10 s for
    headers and bodies) and been replaced by a fresh one, so the server is in the state
    it would hold for 30 s. /healthz and reads keep a p99 under 100 ms with no failure,
    slow bodies get a 408 JSON error, memory stays bounded."""
    idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(100)]

    def open_trickler(kind: str) -> tuple[socket.socket, str]:
        sock = socket.create_connection(("127.0.0.1", served.port))
        if kind == "body":
            sock.sendall(f"PUT {VOTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                         "\r\nContent-Length: 12\r\n\r\n".encode())
        else:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        sock.setblocking(False)
        return sock, kind

    tricklers = [open_trickler("body" if n % 2 else "header") for n in range(100)]
    rss_before = served.rss()
    answers: dict[str, list[bytes]] = {"body": [], "header": []}
    latencies: dict[str, list[float]] = {"/healthz": [], READ: []}
    failures = []
    stop = threading.Event()

    def trickle() -> None:
        sent = 0
        while not stop.wait(1.0):
            sent += 1
            for sock, kind in list(tricklers):
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data is not None:  # answered or closed: a fresh one takes its place
                    answers[kind].append(data)
                    tricklers.remove((sock, kind))
                    sock.close()
                    tricklers.append(open_trickler(kind))
                    continue
                try:
                    sock.send(b"X-Pad-%d: v\r\n" % sent if kind == "header" else b" ")
                except OSError:
                    pass

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        until = time.monotonic() + 15
        rss_max = rss_before
        while time.monotonic() < until:
            for path in latencies:
                started = time.perf_counter()
                try:
                    status = requests.get(served.url + path, timeout=5).status_code
                except requests.RequestException as exc:
                    status = repr(exc)
                latencies[path].append((time.perf_counter() - started) * 1000)
                if status != 200:
                    failures.append((path, status))
            rss_max = max(rss_max, served.rss())
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
        for sock in idle:
            sock.close()
        for sock, _ in tricklers:
            sock.close()
    assert not failures, failures[:5]
    for path, values in latencies.items():
        values.sort()
        assert len(values) >= 50, path
        p99 = values[int(len(values) * 0.99)]
        assert p99 < 100, (path, p99, values[-5:])
    # Every slow body (12 s for 12 bytes) was refused with engage's JSON 408.
    assert len(answers["body"]) >= 50, answers["body"][:3]
    for raw in answers["body"]:
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), raw[:200]
        assert json.loads(body)["error"]["code"] == "request_timeout"
    assert served.log().count("PUT refused 408") >= len(answers["body"])
    # Half-sent headers are dropped at the 10 s header deadline, without an answer.
    assert answers["header"] and set(answers["header"]) == {b""}
    assert rss_max - rss_before < 64 * 2**20, (rss_before, rss_max)


def test_two_thousand_idle_connections_leave_the_service_up(served: Served) -> None:
    """granian never times out a connection that sends nothing; with its default limit
    (512 connections a worker) about a thousand such connections stopped the service."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    rss_before = served.rss()
    idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(2000)]
    try:
        time.sleep(0.5)
        for _ in range(10):
            assert requests.get(served.url + "/healthz", timeout=5).status_code == 200
            read = requests.get(served.url + READ, timeout=5)
            # The server dates every answer (RFC 9110): the app does not.
            assert read.status_code == 200 and parse_date(read.headers["Date"]) is not None
        assert served.rss() - rss_before < 64 * 2**20
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def raise_file_limit(wanted: int) -> tuple[int, int]:
    """The client's side: every connection held here is a file descriptor. Returns the
    limits to restore."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return soft, hard


def timed_requests(url: str, seconds: float) -> dict[str, list[tuple[float, int]]]:
    """Reads and new-reader votes from two threads, each on a new connection, for
    `seconds`: (ms, status) of each, status 0 when no answer came within 5 s."""
    identity = Identity(SECRET, [])
    found: dict[str, list[tuple[float, int]]] = {"read": [], "vote": []}
    until = time.monotonic() + seconds

    def run(kind: str) -> None:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                if kind == "read":
                    status = requests.get(url + READ, timeout=5).status_code
                else:
                    status = requests.put(url + VOTE, json={"choice": "yes"}, timeout=5,
                                          headers={"X-Engage-Reader": identity.mint_reader()}
                                          ).status_code
            except requests.RequestException:
                status = 0
            found[kind].append(((time.perf_counter() - started) * 1000, status))
            time.sleep(0.02)

    threads = [threading.Thread(target=run, args=(kind,)) for kind in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def test_stalled_bodies_and_idle_connections_leave_reads_and_votes_answered(
    served: Served,
) -> None:
    """The issue's attack, at its full size: from one address, 1,000 connections that
    send a vote's headers with `Content-Length: 1000` and one byte of body, then stall,
    and 1,000 that send nothing. Each stalled body once held one of granian's 128 WSGI
    threads a worker, so about 260 took the service offline. Now a body is read in the
    event loop before a thread is taken: another client's reads and votes keep a p99
    under 250 ms with no failure, and once the attacker closes everything the service
    answers within 5 s."""
    limits = raise_file_limit(4096)
    head = (f"PUT {VOTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{").encode()
    held: list[socket.socket] = []
    rss_before = served.rss()
    try:
        for n in range(2000):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            held.append(sock)
            if n % 2:
                sock.sendall(head)
        # Once the server has taken them all (the burst of 2,000 connections is not the
        # measure), for well under BODY_TIMEOUT: no stalled body is answered meanwhile.
        wait_for(served.healthy, 5)
        during = timed_requests(served.url, 6.0)
        rss_during = served.rss()
        for sock in held:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)  # neither answered nor closed: still held by the server
    finally:
        for sock in held:
            sock.close()
        closed = time.monotonic()
    back = wait_for(lambda: requests.get(served.url + READ, timeout=5).status_code == 200, 5)
    after = timed_requests(served.url, 1.0)
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    for kind, outcomes in during.items():
        assert len(outcomes) >= 20, (kind, len(outcomes))
        assert {status for _, status in outcomes} == {200}, (kind, outcomes[:5])
        latencies = sorted(ms for ms, _ in outcomes)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        assert p99 < 250, (kind, p99, latencies[-5:])
    assert back < 5.0 and time.monotonic() - closed < 10
    assert all(status == 200 for outcomes in after.values() for _, status in outcomes)
    # A waiting body costs memory, a few KB: 2,000 of them well under 100 MiB.
    assert rss_during - rss_before < 100 * 2**20, (rss_before, rss_during)


# -- workers killed under load ----------------------------------------------------------------
def test_workers_run_on_uvloop() -> None:
    """uvloop is a dependency on this platform, and granian is told to use it: granian
    imports it whenever it is installed, so only the setting tells it is used."""
    from granian.constants import Loops

    from engage.server import granian_server

    assert granian_server("127.0.0.1:0", 2, "engage.server:granian_app").loop == Loops.uvloop


def test_killed_workers_are_replaced_and_metrics_stay_whole(served: Served) -> None:
    """SIGKILL to one worker, SIGTERM to the other, under reads and votes: the server
    replaces them, requests keep succeeding, counters never go down and no gauge keeps a
    dead worker's value."""
    scrapes = [scrape(served.url)]
    first = served.workers()
    assert all(spawned(pid) for pid in first)
    with Load(served.url) as load:
        time.sleep(1.0)
        for sig, victim in zip((signal.SIGKILL, signal.SIGTERM), first, strict=True):
            os.kill(victim, sig)
            wait_for(lambda v=victim: v not in served.workers()
                     and len(served.workers()) == 2, 20)
            settled = time.monotonic() + 0.5  # requests already sent to the victim
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                scrapes.append(scrape(served.url))
                time.sleep(0.1)
            for kind in ("read", "vote"):
                after = load.statuses(kind, since=settled)
                assert after and set(after) == {200}, (sig, kind, sorted(set(after)))
    assert not set(served.workers()) & set(first)
    # The replacements too start as fresh interpreters, never as forks of the serving
    # process, whose threads may hold a lock at the moment of a fork (engage.server).
    assert all(spawned(pid) for pid in served.workers())
    for kind in ("read", "vote"):
        statuses = load.statuses(kind)
        # Only what the SIGKILLed worker held can fail: each of the two client threads
        # of a kind can lose its request in flight and one connection that raced the exit.
        assert len([s for s in statuses if s != 200]) <= 4, (kind, sorted(set(statuses)))
    scrapes.append(scrape(served.url))
    for before, after in zip(scrapes, scrapes[1:], strict=False):
        assert after["accepted"] >= before["accepted"]
        assert after["requests"] >= before["requests"]
    votes = load.statuses("vote")
    counted = scrapes[-1]["accepted"] - scrapes[0]["accepted"]
    assert votes.count(200) <= counted <= len(votes)
    # Nothing is in progress (a scrape does not count itself) once the server has marked
    # the dead workers dead.
    wait_for(lambda: scrape(served.url)["in_progress"] == 0.0, 5)


def spawned(pid: int) -> bool:
    """The process runs multiprocessing's spawn entry point: a fresh interpreter."""
    return "multiprocessing.spawn" in " ".join(psutil.Process(pid).cmdline())


# -- crash loops ----------------------------------------------------------------------------
@pytest.fixture
def embedded_served() -> Iterator[Served]:
    """`engage serve` on its embedded Redis, whose socket path must stay short."""
    directory = Path(tempfile.mkdtemp(prefix="engage-", dir="/tmp"))
    try:
        server = Served(None, directory)
        try:
            client = redis.Redis.from_url(EmbeddedRedis(directory).url)
            client.hset(f"engage:a:{{{ARTICLE}}}",
                        mapping={"title": "t", "url": "https://e.example/"})
            client.zadd("engage:articles", {ARTICLE: 0})
            client.close()
            yield server
        finally:
            server.stop()
    finally:
        stop_embedded(directory)
        shutil.rmtree(directory, ignore_errors=True)


def running(pid: int) -> bool:
    """Whether the process runs: the test run reaps daemonized servers that exit, so one
    may linger as a zombie first."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_worker_one(served: Served, times: int) -> list[float]:
    """SIGKILL to granian's worker-1 (the first spawned), then to each replacement as
    soon as it appears: when each kill was sent."""
    known = set(served.workers())
    victim = min(known)
    kills = []
    while True:
        os.kill(victim, signal.SIGKILL)
        kills.append(time.monotonic())
        if len(kills) == times:
            return kills
        wait_for(lambda seen=frozenset(known): set(served.workers()) - seen, 10)
        new = set(served.workers()) - known
        known |= new
        victim = min(new)


def test_a_worker_killed_five_times_in_two_seconds(embedded_served: Served) -> None:
    """granian stops altogether when a worker dies again within 5.5 s of its replacement
    (its crash-loop guard); `engage serve` starts it again, saying so in one line, and
    its embedded Redis never stops."""
    served = embedded_served
    redis_pid = EmbeddedRedis(served.tmpdir.parent).pid()
    assert redis_pid is not None
    serving_pid = served.process.pid
    kills = kill_worker_one(served, 5)
    assert kills[-1] - kills[0] < 2.0, kills

    def answering() -> bool:
        try:
            return (requests.get(served.url + READ, timeout=2).status_code == 200
                    and requests.get(served.url + "/readyz", timeout=2).status_code == 200)
        except requests.RequestException:
            return False

    assert wait_for(answering, 10) < 10
    wait_for(lambda: len(served.workers()) == 2, 10)
    assert requests.put(served.url + VOTE, json={"choice": "yes"}, timeout=5, headers={
        "X-Engage-Reader": Identity(SECRET, []).mint_reader()}).status_code == 200
    assert served.process.poll() is None and served.process.pid == serving_pid
    assert EmbeddedRedis(served.tmpdir.parent).pid() == redis_pid
    assert running(redis_pid)
    log = served.log()
    guards = log.count("Worker crash loop detected")
    assert guards >= 1, log[-3000:]
    # One line for each time granian was started again.
    assert log.count("starting it again") == guards
    assert "embedded Redis had died" not in log


def test_sigterm_in_a_crash_loop_stops_engage_serve(embedded_served: Served) -> None:
    """A SIGTERM that arrives while granian stops for its crash-loop guard, or while
    `engage serve` waits to start it again, stops `engage serve` (and its Redis)."""
    served = embedded_served
    redis_pid = EmbeddedRedis(served.tmpdir.parent).pid()
    kill_worker_one(served, 2)
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(15) == 0, served.log()[-3000:]
    assert redis_pid is not None
    wait_for(lambda: not running(redis_pid), 10)


# -- SIGTERM under load ---------------------------------------------------------------------
def test_sigterm_under_load_completes_requests_and_leaves_nothing(
    served: Served, redis_for_server: RedisServer,
) -> None:
    """Requests in flight when SIGTERM arrives (held by a paused Redis) complete; the
    server exits within its graceful timeout and removes its temporary directory."""
    assert served.metrics_dir().is_dir()
    with Load(served.url, threads=6) as load:
        time.sleep(0.5)
        redis_for_server.pause()
        paused_at = time.monotonic()
        time.sleep(0.3)
        term_at = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.4)  # under engage's 1 s Redis socket timeout
        redis_for_server.resume()
        code = served.process.wait(GRACEFUL_S + 5)
        exit_s = time.monotonic() - term_at
    assert code == 0, served.log()[-2000:]
    assert exit_s < GRACEFUL_S
    # Sent in the 0.1 s before Redis paused: in a worker, waiting on Redis, at SIGTERM.
    held = [s for t, _, s in load.outcomes if paused_at - 0.1 < t < paused_at]
    assert held and set(held) == {200}, sorted(set(held))
    assert list(served.tmpdir.iterdir()) == []


# -- what granian refuses itself ------------------------------------------------------------
def test_what_granian_answers_for_requests_it_refuses(served: Served) -> None:
    """granian answers these before the app: an empty 400/414/431 and a closed
    connection (the operations guide lists them). Oversized requests engage sees keep
    engage's JSON error."""
    refused = {
        # hyper says 414 or, once the line outgrows its read buffer, 431.
        b"GET /" + b"a" * 102_400 + b" HTTP/1.1\r\nHost: x\r\n\r\n": (414, 431),
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(200))
        + b"\r\n": (431,),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n": (400,),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n": (400,),
    }
    for data, statuses in refused.items():
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            sock.sendall(data)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        assert int(head[9:12]) in statuses, raw[:100]
        assert b"connection: close" in head.lower() and body == b""
    response = requests.put(served.url + VOTE, data=b"x" * (65 * 1024), timeout=5,
                            headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"]
    assert served.healthy()


# -- the metrics directory ----------------------------------------------------------------------
def test_metrics_directory_is_emptied_or_made_and_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"old")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    directory = MetricsDirectory.open()
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
    directory.close()
    assert given.is_dir()  # a configured directory stays

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    import tempfile

    directory = MetricsDirectory.open()
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.parent == Path(tempfile.gettempdir())
    assert made.name.startswith("engage-metrics-")
    # A forked worker inherits the object but never removes the directory.
    pid = os.fork()
    if pid == 0:
        directory.close()
        os._exit(0)
    os.waitpid(pid, 0)
    assert made.is_dir()
    directory.close()
    assert not made.exists()


def test_metrics_directory_marks_exited_children_dead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """A child that exits, however it exits, stops counting in the live gauges; the
    others still count."""
    from prometheus_client import CollectorRegistry, multiprocess

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    directory = MetricsDirectory.open()
    busy = ("import sys; from prometheus_client import Gauge; "
            "Gauge('busy', 'Busy.', multiprocess_mode='livesum').inc(); "
            "print('up', flush=True); sys.stdin.read()")
    children = [subprocess.Popen([sys.executable, "-c", busy], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]

    def live_sum() -> float | None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        return registry.get_sample_value("busy")

    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "up\n"
        assert live_sum() == 2.0
        wait_for(lambda: {c.pid for c in children} <= directory.children, 5)
        children[0].kill()
        children[0].wait()
        wait_for(lambda: live_sum() == 1.0, 5)
    finally:
        for child in children:
            child.kill()
            child.wait()
        directory.close()
