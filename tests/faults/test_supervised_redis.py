"""`engage serve` and its embedded Redis under real signals, under load.

A worker killed with SIGTERM or SIGKILL takes nothing with it: the other worker and the
replacement keep serving reads and votes, and the embedded redis-server is the same
process throughout (a worker's exit once ran the serve command's cleanup and stopped it).

The redis-server killed with -9: the serving process starts it again from its AOF in
the same data directory and socket. Meanwhile requests answer 503 with Retry-After,
service is back within five seconds, engage itself is never restarted, and no vote
acknowledged more than a second before the kill is missing (appendfsync everysec).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests

from engage.store import get_store
from engage.store.embedded import EmbeddedRedis, _alive
from tests.conftest import make_app
from tests.faults import (
    REPO,
    SECRET,
    Outcome,
    Recorder,
    mint_readers,
    reader_hash,
    wait_for,
)
from tests.processes import serving_workers
from tests.redis_server import free_port, stop_embedded

pytestmark = pytest.mark.slow

ARTICLE = "korea-china-reset"  # loaded by --demo


class Serve:
    """`engage serve --demo` with its embedded Redis, in a subprocess."""

    def __init__(self, workers: int = 2) -> None:
        self.directory = Path(tempfile.mkdtemp(dir="/tmp"))  # keeps the socket path short
        self.embedded = EmbeddedRedis(self.directory / "data")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("ENGAGE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        self.env.update({
            "PYTHONPATH": str(REPO),
            "ENGAGE_SECRET_KEY": SECRET,
            "ENGAGE_DATA_DIR": str(self.embedded.data_dir),
            "ENGAGE_LOG_JSON": "0",
            "ENGAGE_THROTTLE_VOTES": "1000000000",
        })
        self.args = [sys.executable, "-m", "engage.cli", "serve", "--demo",
                     "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)]
        self.process: subprocess.Popen[bytes] | None = None
        self.worker_count = workers

    def start(self) -> Serve:
        log = open(self.directory / "serve.log", "wb")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(self.args, cwd=self.directory, env=self.env,
                                        stdout=log, stderr=log)
        wait_for(self.ready, timeout=40, interval=0.1)
        wait_for(lambda: len(self.workers()) == self.worker_count, timeout=20)
        return self

    def ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log()
        try:
            return requests.get(self.url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return (self.directory / "serve.log").read_text(errors="replace")

    def workers(self) -> list[int]:
        """The live workers; one that exits while they are listed is not among them."""
        assert self.process is not None
        return serving_workers(self.process.pid, exclude_names=())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        stop_embedded(self.embedded.data_dir)  # in case the serve process did not
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def serve() -> Iterator[Serve]:
    server = Serve().start()
    try:
        yield server
    finally:
        server.stop()


class Traffic:
    """Reads and votes from background threads; every acknowledged vote in a ledger."""

    def __init__(self, base: str, readers: list[str], threads: int = 4) -> None:
        self.reads_url = f"{base}/api/v1/articles/{ARTICLE}/reactions"
        self.votes_url = f"{base}/api/v1/articles/{ARTICLE}/reactions/mine"
        self.readers = iter(readers)
        self.lock = threading.Lock()
        self.reads = Recorder()
        self.votes = Recorder()
        self.ledger: dict[str, tuple[str, float]] = {}  # token -> (choice, acknowledged at)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._read if n % 2 else self._vote, args=(n,))
                        for n in range(threads)]

    def _read(self, _: int) -> None:
        session = requests.Session()
        while not self.stopping.is_set():
            self.reads.call(session, "GET", self.reads_url, timeout=5)

    def _vote(self, seed: int) -> None:
        session = requests.Session()
        rng = random.Random(seed)
        while not self.stopping.is_set():
            with self.lock:
                token = next(self.readers)
            choice = rng.choice(("yes", "no"))
            outcome = self.votes.call(session, "PUT", self.votes_url, json={"choice": choice},
                                      headers={"X-Engage-Reader": token}, timeout=5)
            if outcome.status == 200:
                assert outcome.body["mine"] == choice
                with self.lock:
                    self.ledger[token] = (choice, outcome.started + outcome.elapsed)

    def all(self) -> list[Outcome]:
        return self.reads.outcomes + self.votes.outcomes

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        for thread in self.threads:
            thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            for thread in self.threads:
                thread.join(15)


def stored_votes(serve: Serve, tokens: list[str]) -> tuple[dict[str, str], int, int]:
    """Each token's stored choice, the voters and the counted votes of the article."""
    app = make_app(serve.embedded.url, serve.directory, SECRET_KEY=SECRET)
    with app.app_context():
        store = get_store()
        voters = store.redis.hgetall(store.keys.article_voters(ARTICLE))
        counts = store.redis.hgetall(store.keys.article_counts(ARTICLE))
        store.close()
    choices = {token: voters.get(reader_hash(app, token)) for token in tokens}
    return choices, len(voters), sum(int(n) for n in counts.values())


def readers_for(serve: Serve, n: int) -> list[str]:
    app = make_app(serve.embedded.url, serve.directory, SECRET_KEY=SECRET)
    readers = mint_readers(app, n)
    with app.app_context():
        get_store().close()
    return readers


def served_since(recorder: Recorder, since: float) -> int:
    return sum(1 for o in recorder.between(since, float("inf")) if o.status == 200)


def test_a_worker_killed_under_load(serve: Serve) -> None:
    """Every step waits for what it needs (a replacement worker, answers after it), never
    for a fixed time, so a slow machine makes the test slower, not red."""
    redis_pid = serve.embedded.pid()
    assert redis_pid is not None
    traffic = Traffic(serve.url, readers_for(serve, 30_000))
    kills: list[tuple[float, float]] = []  # (killed at, serving again at)
    with traffic.running():
        wait_for(lambda: min(served_since(traffic.reads, 0), served_since(traffic.votes, 0))
                 > 20, timeout=60)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            before = serve.workers()
            assert len(before) == 2
            victim = before[0]
            killed_at = time.monotonic()
            os.kill(victim, sig)
            wait_for(lambda v=victim: v not in serve.workers() and len(serve.workers()) == 2,
                     timeout=30, interval=0.05)
            replaced_at = time.monotonic()
            # The other worker and the replacement go on serving reads and votes.
            wait_for(lambda s=replaced_at: min(served_since(traffic.reads, s),
                                               served_since(traffic.votes, s)) > 20, timeout=60)
            kills.append((killed_at, time.monotonic()))
        settled = kills[-1][1] + 1.0
        wait_for(lambda: sum(1 for o in traffic.all() if o.started > settled) > 40, timeout=60)
    outcomes = traffic.all()

    # The embedded Redis never noticed: the same process, never restarted.
    assert serve.embedded.pid() == redis_pid and _alive(redis_pid)
    assert "started it again" not in serve.log()
    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 0}, statuses  # no 503: storage stayed up
    # Unanswered requests only while a worker goes and its replacement comes. SIGKILL
    # drops what the worker held (requests, kept-alive connections). With SIGTERM the
    # worker finishes its requests, but each worker listens on a socket of its own
    # (SO_REUSEPORT), and connections the kernel had queued on the stopping worker's
    # socket are reset when it closes: seen only under heavy load, and only then.
    dropped = [o for o in outcomes if o.status == 0]
    assert all(any(k - 0.1 <= o.started <= back for k, back in kills) for o in dropped), (
        kills, [(o.started, o.elapsed) for o in dropped])
    tail = [o for o in outcomes if o.started > settled]
    assert tail and all(o.status == 200 for o in tail)
    choices, voters, counted = stored_votes(serve, list(traffic.ledger))
    assert all(choices[token] == choice for token, (choice, _) in traffic.ledger.items())
    assert counted == voters
    print(f"requests {len(outcomes)}, votes acknowledged {len(traffic.ledger)}, "
          f"dropped {len(dropped)}")


def test_redis_killed_under_load_is_started_again(serve: Serve) -> None:
    assert serve.process is not None
    engage_pid, workers = serve.process.pid, serve.workers()
    first = serve.embedded.pid()
    assert first is not None
    traffic = Traffic(serve.url, readers_for(serve, 30_000))
    probe = requests.Session()
    with traffic.running():
        wait_for(lambda: len(traffic.ledger) > 60, timeout=60)
        # The AOF is flushed every second: what was acknowledged a second before the
        # kill must survive it, so the kill comes a second after enough votes.
        time.sleep(1.05)
        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: serve.embedded.pid() not in (None, first)
                 and serve.embedded.is_running(), timeout=5)
        # When the new server process began, on this test's clock: it cannot have
        # answered before (the test's own polling may notice it later on a busy machine).
        new_pid = serve.embedded.pid()
        assert new_pid is not None
        back_at = psutil.Process(new_pid).create_time() - (time.time() - time.monotonic())
        wait_for(lambda: probe.get(serve.url + "/readyz", timeout=2).status_code == 200,
                 timeout=5)
        answering_at = time.monotonic()
        wait_for(lambda: sum(1 for o in traffic.all() if o.started > answering_at + 1.0) > 40,
                 timeout=60)
    outcomes = traffic.all()

    assert answering_at - killed_at < 5.0
    # Never engage: the same serving process and the same workers.
    assert serve.process.poll() is None and serve.process.pid == engage_pid
    assert serve.workers() == workers
    assert serve.log().count("started it again") == 1
    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, statuses  # no 500, no dropped connection
    refused = [o for o in outcomes if o.status == 503]
    assert refused
    for outcome in refused:
        assert outcome.retry_after and int(outcome.retry_after) > 0
        assert outcome.body["error"]["code"] == "storage_unavailable"
        assert killed_at - 0.5 < outcome.started < answering_at + 1.0, outcome
    # A vote always reaches Redis: one answered while it was down was refused. (One
    # begun then may succeed: its retry finds the server started again. The margins
    # cover the signal's delivery and this test's polling for the new server.)
    down = [o for o in traffic.votes.between(killed_at + 0.05, back_at)
            if o.started + o.elapsed < back_at]
    assert all(o.status == 503 for o in down), {o.status for o in down}
    after = [o for o in outcomes if o.started > answering_at + 1.0]
    assert len(after) > 20 and all(o.status == 200 for o in after)
    # The ledger: nothing acknowledged a second before the kill is missing.
    choices, voters, counted = stored_votes(serve, list(traffic.ledger))
    old = {t: c for t, (c, at) in traffic.ledger.items() if at < killed_at - 1.0}
    assert len(old) > 50, "too little load to mean anything"
    assert [t for t, c in old.items() if choices[t] != c] == []
    recent_lost = sum(1 for t, (c, _) in traffic.ledger.items() if choices[t] != c)
    assert counted == voters  # nothing invented either
    print(f"started again after {back_at - killed_at:.2f} s, answering after "
          f"{answering_at - killed_at:.2f} s, refused {len(refused)}, "
          f"acknowledged {len(traffic.ledger)}, "
          f"lost in the last second {recent_lost}")
