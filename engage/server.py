"""The HTTP server of `engage serve`: granian, the one server engage ships.

granian (Rust HTTP/1 and HTTP/2 with worker processes) was chosen by measurement
(bench/servers.py, docs/server.md): idle connections and half-sent headers wait in Rust
and never hold a Python thread. engage serves it as ASGI, and adds:

- `BufferedWSGI`, the ASGI app around engage's WSGI app: each request body is read
  whole in the worker's event loop, within a deadline and a size limit, before the app
  takes a thread, so stalled and slow bodies cost memory, not threads (under granian's
  WSGI interface about 270 stalled bodies held every thread);
- `run_granian`, which starts granian again when its crash-loop guard stops it (a
  worker dying again right after its replacement), in the same process;
- the prometheus multiprocess directory, emptied at start, its exited workers marked
  dead, removed on exit when engage made it: `MetricsDirectory`.

granian answers the requests it refuses while parsing (a request line or headers over
its buffer, more than 100 headers, bytes that are not HTTP) itself, with an empty 400,
414 or 431 and `Connection: close`; the app never sees them.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import io
import json
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from engage.errors import error_document

# -- granian -------------------------------------------------------------------------------
# Python threads per granian worker that run the app (started as requests need them). Only
# a request whose body has arrived takes one (BufferedWSGI), for as long as engage works on
# it; kept under ENGAGE_REDIS_MAX_CONNECTIONS (64) so a thread never waits for a Redis
# connection.
THREADS = 32
# A client has this long to send its request headers; then granian closes the connection
# (without an answer: it has no request to answer). Idle kept-alive connections too.
HEADER_TIMEOUT_MS = 10_000
# Requests one granian worker holds at once, connections included; more wait in the
# listen queue. An idle connection (granian never times one out) or a request waiting
# for its body costs a few KB and a file descriptor, no thread, so this is set far above
# what traffic needs: with granian's default (512) about a thousand idle connections
# stopped the service.
CONNECTIONS = 16_384
# A request body that has not arrived whole this many seconds after the headers gets 408.
BODY_TIMEOUT = 10.0
# Bytes of an answer the app produces on its thread before the event loop sends them: a
# streamed export goes out in pieces of about this size, never whole in memory.
RESPONSE_BATCH = 64 * 1024
# Seconds granian gives a stopping worker to finish the requests it has started.
GRACEFUL_TIMEOUT = 20
# When granian's crash-loop guard stops it, it is started again after RESTART_DELAY
# seconds, doubled for each stop that follows within RESTART_RESET seconds of the last
# start, up to RESTART_MAX.
RESTART_DELAY = 0.25
RESTART_MAX = 30.0
RESTART_RESET = 60.0
# How often the server looks for exited workers to mark dead in the metrics directory.
CHILDREN_INTERVAL = 0.5

log = logging.getLogger(__name__)


class MetricsDirectory:
    """PROMETHEUS_MULTIPROC_DIR for the serving processes, kept as prometheus client's
    multiprocess documentation asks.

    Set before anything imports prometheus_client (the client picks its storage then).
    A configured directory is emptied of the files of an earlier run (they would add old
    counts); without one, a temporary directory is made and removed when the server
    exits. While it is open, a thread marks every child process that has exited dead
    (`multiprocess.mark_process_dead`), so a killed worker's live gauges (requests in
    progress) stop counting: granian has no hook for a worker's exit, so the children
    are read from /proc every CHILDREN_INTERVAL seconds (Linux; elsewhere none are).
    Only the process that opened it closes it, should a forked child inherit the object.
    """

    def __init__(self, path: str, temporary: bool) -> None:
        self.path = path
        self.temporary = temporary
        self.owner = os.getpid()
        self.stopped = threading.Event()
        self.children: set[int] = set()
        threading.Thread(target=self.mark_exited_children, name="engage-metrics-dir",
                         daemon=True).start()

    @classmethod
    def open(cls) -> MetricsDirectory:
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not path:
            path = tempfile.mkdtemp(prefix="engage-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
            return cls(path, temporary=True)
        os.makedirs(path, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink()
        return cls(path, temporary=False)

    def mark_exited_children(self) -> None:
        """A child is known from the first look after it started: a granian worker takes
        longer than that to build its app and answer anything."""
        from prometheus_client import multiprocess

        while not self.stopped.wait(CHILDREN_INTERVAL):
            alive = child_pids()
            for pid in self.children - alive:
                multiprocess.mark_process_dead(pid, self.path)
            self.children = alive

    def close(self) -> None:
        if os.getpid() == self.owner:
            self.stopped.set()
            if self.temporary:
                shutil.rmtree(self.path, ignore_errors=True)


def child_pids() -> set[int]:
    """The pids of this process's children, from every thread's list in /proc."""
    pids: set[int] = set()
    for path in Path("/proc/self/task").glob("*/children"):
        try:
            pids.update(int(pid) for pid in path.read_text().split())
        except OSError:  # the thread has ended
            continue
    return pids


class ClientGone(Exception):
    """The client closed its connection before its request body arrived."""


class BufferedWSGI:
    """ASGI app serving a WSGI app: a request takes a thread only once its body is in.

    granian's WSGI interface gives a request a Python thread as soon as its headers are
    in, and the thread then waits for the body: about 270 clients that sent headers and
    one byte of body, then nothing, held every thread and nothing else was answered. Here
    the body is read in the worker's event loop, where a waiting request costs a few KB:
    whole, within `timeout` seconds of the headers (else 408 `request_timeout` and the
    connection closes), up to `max_length` bytes (a longer declared length is passed on
    unread and Flask answers 413; a chunked body is read until it passes the limit and
    handed on with its length, so Flask answers 413 too). Then the WSGI app runs on one
    of `threads` threads and the event loop sends its answer, RESPONSE_BATCH bytes at a
    time.
    """

    def __init__(self, app: Any, timeout: float, max_length: int, threads: int) -> None:
        self.app = app
        self.timeout = timeout
        self.max_length = max_length
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="engage-request")
        body = json.dumps(error_document(
            "request_timeout", f"The request body took longer than {timeout:g} s to arrive."),
            separators=(",", ":")) + "\n"
        self.refusal = body.encode("ascii")

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return  # granian's "asginl" sends no lifespan events; websockets are off
        environ = wsgi_environ(scope)
        body = b""
        length = self._body_length(environ)
        if length:
            try:
                async with asyncio.timeout(self.timeout):
                    body = await self._read_body(receive, length)
            except TimeoutError:
                await self._refuse(environ, send)
                return
            except ClientGone:
                return
            if environ.pop("HTTP_TRANSFER_ENCODING", None) is not None:
                # Handed on whole, as a buffering proxy does: with its length, which
                # Flask compares with its limit.
                environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        loop = asyncio.get_running_loop()
        # Flask keeps its request context in context variables: every step of one request
        # runs in one context, whichever pool thread takes it.
        context = contextvars.copy_context()
        answer = Answer()
        try:
            chunk = await loop.run_in_executor(
                self.pool, context.run, answer.begin, self.app, environ)
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": answer.headers})
            answer.started = True
            while not answer.done:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunk = await loop.run_in_executor(self.pool, context.run, answer.more)
            await send({"type": "http.response.body", "body": chunk})
        finally:
            if not answer.done:  # the client left mid-answer, or the app failed
                await loop.run_in_executor(self.pool, context.run, answer.close)

    def _body_length(self, environ: dict[str, Any]) -> int:
        """Bytes to read before the app runs: the declared length; one more than the
        limit for a chunked body (so Flask sees it is too long); 0 when there is no body
        or Flask refuses it unread."""
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self.max_length + 1
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return 0  # werkzeug answers a bad length
        return length if 0 < length <= self.max_length else 0

    async def _read_body(self, receive: Callable[[], Awaitable[Any]], length: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        # Once `length` bytes are in, the message that would say so is not waited for.
        while size < length:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _refuse(self, environ: dict[str, Any],
                      send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        from engage import logs, metrics

        method = environ["REQUEST_METHOD"]
        logs.refused(408, method, bool(getattr(self.app, "config", {}).get("LOG_JSON", True)))
        metrics.request_refused(408, method)
        await send({"type": "http.response.start", "status": 408, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.refusal)).encode("ascii")),
            # The rest of the body may still come: it cannot be taken for a request.
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": self.refusal})


class Answer:
    """One WSGI answer: produced on a pool thread, a batch at a time, sent by the loop."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False  # the status and headers are sent
        self.done = False  # the last batch is produced and the iterable closed
        self.written: list[bytes] = []  # what the app gave the `write` callable
        self.iterable: Iterable[bytes] = ()
        self.chunks: Iterator[bytes] = iter(())

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and self.started:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = int(status[:3])
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in headers]
        return self.written.append

    def begin(self, app: Any, environ: dict[str, Any]) -> bytes:
        self.iterable = app(environ, self.start_response)
        self.chunks = iter(self.iterable)
        return self.more()

    def more(self) -> bytes:
        """The next RESPONSE_BATCH bytes or so; after the last, the iterable is closed."""
        batch, self.written = self.written, []
        size = sum(len(chunk) for chunk in batch)
        for chunk in self.chunks:
            batch.append(chunk)
            size += len(chunk)
            if size >= RESPONSE_BATCH:
                return b"".join(batch)
        self.close()
        return b"".join(batch + self.written)

    def close(self) -> None:
        self.done = True
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()


def wsgi_environ(scope: dict[str, Any]) -> dict[str, Any]:
    """The PEP 3333 environ of an ASGI request, as granian's WSGI interface builds it
    (wsgi.input is added once the body is in)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        # The path's bytes as sent, %-decoded, one byte per character (ASGI's `path` is
        # already decoded as UTF-8, with what was not UTF-8 replaced).
        "PATH_INFO": unquote_to_bytes(scope["raw_path"]).decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope["scheme"],
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        # The body is read whole before the app runs.
        "wsgi.input_terminated": True,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper()
        if "_" in name:
            # X_Forwarded_For would pass for X-Forwarded-For once both are HTTP_ keys.
            continue
        key = name.replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = raw_value.decode("latin-1")
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


def granian_app() -> Any:
    """The ASGI app each granian worker serves (granian calls this factory)."""
    # A worker starts with the signal handlers of the serving process, which cannot stop
    # it: a SIGTERM while it loads (granian stopping it) would be lost, and granian
    # would wait GRACEFUL_TIMEOUT to kill it. Until granian installs the worker's own
    # handlers, once this returns, SIGTERM and SIGINT end it at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from engage import create_app

    app = create_app()
    return BufferedWSGI(app, BODY_TIMEOUT, int(app.config["MAX_CONTENT_LENGTH"]), THREADS)


def run_granian(bind: str, workers: int, target: str = "engage.server:granian_app") -> None:
    """Serve the app that the factory `target` ("module:function") returns, until SIGTERM
    or SIGINT; the benchmark passes another to measure its own view under the same
    settings.

    granian replaces a worker that dies, but when the same worker dies again within 5.5 s
    of being replaced it takes this for a crash loop and stops altogether (none of its
    settings changes that). It is then started again here, in the same process, so the
    embedded Redis and the aggregates thread of `engage serve` carry on.
    """
    raise_file_limit(CONNECTIONS * workers + 1024)
    # Workers start as fresh interpreters, never as forks of this process: its threads
    # (aggregates, pages, feeds, the metrics directory's) may hold a lock at the moment
    # of a fork, an import's or prometheus client's, and the fork would wait on it
    # forever (a worker forked while a thread imported prometheus_client never answered).
    multiprocessing.set_start_method("spawn", force=True)
    stop = threading.Event()
    delay = RESTART_DELAY
    while True:
        server = granian_server(bind, workers, target)
        server.on_startup(partial(notice_signals, stop))
        started = time.monotonic()
        try:
            server.serve()
            return  # stopped by SIGTERM or SIGINT
        except SystemExit as exc:
            # 1: its crash-loop guard gave up (perhaps as a signal asked it to stop).
            if exc.code != 1:
                raise
        if stop.is_set():
            return
        if time.monotonic() - started > RESTART_RESET:
            delay = RESTART_DELAY
        log.warning("engage serve: granian stopped, a worker having died again right after "
                    "its replacement; starting it again in %g s", delay)
        if stop.wait(delay):
            return
        delay = min(delay * 2, RESTART_MAX)


def notice_signals(stop: threading.Event) -> None:
    """granian's startup hook: SIGTERM and SIGINT set `stop`, then reach the handlers
    granian installed, as before. granian exits alike when its crash-loop guard gives up
    and when a signal came meanwhile; `stop` tells the two apart, and ends the wait
    before a restart."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(signum)

        def noticed(sig: int, frame: Any, handler: Any = handler) -> None:
            stop.set()
            if callable(handler):
                handler(sig, frame)

        signal.signal(signum, noticed)


def raise_file_limit(wanted: int) -> None:
    """Every connection is a file descriptor; many systems start a process at 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit), hard))


def granian_server(bind: str, workers: int, target: str) -> Any:
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings

    host, _, port = bind.rpartition(":")
    return Granian(
        target,
        factory=True,
        # ASGI without lifespan events: BufferedWSGI reads bodies in the event loop.
        interface=Interfaces.ASGINL,
        # Every request crosses from the event loop to an app thread and back: uvloop
        # makes that crossing about 40 µs of CPU cheaper than asyncio's loop
        # (docs/server.md). Where uvloop is not installed (Windows), granian's choice.
        loop=Loops.uvloop if importlib.util.find_spec("uvloop") else Loops.auto,
        address=host or "127.0.0.1",
        port=int(port),
        workers=workers,
        backpressure=CONNECTIONS,
        backlog=4096,  # what Linux allows by default (net.core.somaxconn)
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_TIMEOUT_MS),
        websockets=False,
        # A worker that dies (killed, crashed) is replaced; the others keep serving.
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_TIMEOUT,
        # engage writes one line per request itself.
        log_access=False,
    )
