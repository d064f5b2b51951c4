"""/metrics under gunicorn with four workers: every scrape sees every worker's counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from engage.identity import Identity
from tests.redis_server import RedisServer, free_port

SECRET = "gunicorn-test-secret-key-0123456789"
ACCEPTED = "engage_votes_accepted_total"


def children(pid: int) -> set[int]:
    """Live (non-zombie) child processes of `pid`, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def put_json(url: str, body: dict[str, object], headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="PUT",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"{name}{labels} not exposed")


def votes_per_worker(metrics_dir: Path) -> dict[str, float]:
    """Accepted reaction votes in each worker's own file (one file per pid)."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        counts[path.name] = sum(
            value for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(path))
            if json.loads(key)[1] == ACCEPTED and json.loads(key)[2] == {"kind": "reaction"}
        )
    return counts


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Server:
    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = tmp_path / "metrics"
        self.metrics_dir.mkdir()
        # A stale file from "an earlier run": the server must wipe it at start.
        (self.metrics_dir / "counter_999999.db").write_bytes(b"stale")
        env = {
            **os.environ,
            "ENGAGE_REDIS_URL": redis_url,
            "ENGAGE_SECRET_KEY": SECRET,
            "ENGAGE_DATA_DIR": str(tmp_path),
            "ENGAGE_THROTTLE_VOTES": "100000",
            "ENGAGE_LOG_JSON": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }
        self.log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engage.cli", "serve", "--workers", "4",
             "--bind", f"127.0.0.1:{self.port}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(self.healthy, timeout=30)
        wait_for(lambda: len(children(self.process.pid)) == 4)

    def healthy(self) -> bool:
        assert self.process.poll() is None, "server exited"
        try:
            return get(self.base + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, RedisServer]]:
    redis_server = RedisServer(tmp_path / "redis").start()
    running = None
    try:
        running = Server(redis_server.url, tmp_path)
        yield running, redis_server
    finally:
        if running is not None:
            running.stop()
        redis_server.stop()


def test_counts_are_exact_across_workers_and_survive_a_killed_worker(
    server: tuple[Server, RedisServer],
) -> None:
    app_server, redis_server = server
    client = redis_server.client()
    client.hset("engage:a:{gunicorn}", mapping={"title": "t", "url": "https://e.example/"})
    client.zadd("engage:articles", {"gunicorn": 0})
    identity = Identity(SECRET, [])
    url = app_server.base + "/api/v1/articles/gunicorn/reactions/mine"

    def vote(_i: int) -> int:
        return put_json(url, {"choice": "yes"}, {"X-Engage-Reader": identity.mint_reader()})

    votes = 240
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(vote, range(votes))) == {200}
    assert not (app_server.metrics_dir / "counter_999999.db").exists()
    # Several workers took votes, so a single worker's memory could not answer alone.
    per_worker = votes_per_worker(app_server.metrics_dir)
    assert sum(per_worker.values()) == votes
    assert len([n for n in per_worker.values() if n]) >= 2, per_worker

    for _ in range(10):
        status, text = get(app_server.base + "/metrics")
        assert status == 200
        assert sample(text, ACCEPTED, kind="reaction") == votes

    before = children(app_server.process.pid)
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in children(app_server.process.pid)
             and len(children(app_server.process.pid)) == 4)
    # child_exit marked it dead: its live gauge file is gone, its counters stay.
    wait_for(lambda: not (app_server.metrics_dir / f"gauge_livesum_{victim}.db").exists())
    for _ in range(10):
        status, text = get(app_server.base + "/metrics")
        assert status == 200
        assert sample(text, ACCEPTED, kind="reaction") == votes

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(vote, range(40))) == {200}
    status, text = get(app_server.base + "/metrics")
    assert sample(text, ACCEPTED, kind="reaction") == votes + 40
    assert sample(text, "engage_http_requests_in_progress") >= 1  # this scrape itself
    assert sample(text, "engage_redis_up") == 1.0


def test_config_file_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Workers from ENGAGE_WORKERS (else from the CPUs); a metrics dir always set and
    emptied of old .db files (only those) when the server starts."""
    import runpy

    conf = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.setenv("ENGAGE_WORKERS", "")
    settings = runpy.run_path(str(conf))
    assert settings["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    made = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert made and Path(made).is_dir()
    os.rmdir(made)

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"old")
    (metrics_dir / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    monkeypatch.setenv("ENGAGE_WORKERS", "3")
    settings = runpy.run_path(str(conf))
    assert settings["workers"] == 3
    settings["on_starting"](None)
    assert sorted(p.name for p in metrics_dir.iterdir()) == ["keep.txt"]
