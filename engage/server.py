"""The HTTP server of `engage serve`: granian by default, gunicorn as the alternative.

granian (Rust HTTP/1 and HTTP/2, WSGI workers) was chosen by measurement (bench/servers.py,
docs/server.md): idle connections and half-sent headers wait in Rust and never
hold a Python thread, so a few slow clients cannot take the service offline as they do a
gunicorn sync worker. What it lacks is added here:

- a deadline on request bodies (granian has none): `BodyDeadline`;
- the prometheus multiprocess directory, emptied at start and removed on exit when
  engage made it: `MetricsDirectory` (dead workers are forgotten at scrape time, see
  engage.metrics).

granian answers the requests it refuses while parsing (a request line or headers over
its buffer, more than 100 headers, bytes that are not HTTP) itself, with an empty 400,
414 or 431 and `Connection: close`; the app never sees them.

gunicorn (`engage serve --server gunicorn`, or `gunicorn -c gunicorn.conf.py`) remains
for deployments that put a buffering proxy in front. It refuses some requests itself,
before the app sees them: a request line or headers over its limits, or bytes that are
not HTTP. It answers those with its own HTML page; engage's gunicorn workers answer them
with engage's JSON error instead, so that every client error has the one shape.
gunicorn.conf.py selects them.
"""

from __future__ import annotations

import io
import json
import os
import resource
import runpy
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers import base, gthread, sync

from engage.errors import error_document

# Requests gunicorn refuses while parsing them, and engage's answer to each: (exceptions,
# status, reason phrase as RFC 9110 words it, code, message). Any other error keeps
# gunicorn's own answer.
_REFUSALS: tuple[tuple[tuple[type[Exception], ...], int, str, str, str], ...] = (
    ((http_errors.LimitRequestLine,), 414, "URI Too Long", "uri_too_long",
     "The request line (method, path and query) is too long."),
    ((http_errors.LimitRequestHeaders,), 431, "Request Header Fields Too Large",
     "headers_too_large", "The request has too many headers, or one too large."),
    ((http_errors.InvalidRequestLine, http_errors.InvalidRequestMethod,
      http_errors.InvalidHTTPVersion, http_errors.InvalidHeader,
      http_errors.InvalidHeaderName, http_errors.ObsoleteFolding,
      http_errors.InvalidSchemeHeaders, http_errors.InvalidChunkSize,
      http_errors.ChunkMissingTerminator, http_errors.InvalidChunkExtension),
     400, "Bad Request", "bad_request", "The request is not well-formed HTTP."),
    ((http_errors.ExpectationFailed,), 417, "Expectation Failed", "expectation_failed",
     "Only the expectation Expect: 100-continue is supported."),
    ((http_errors.UnsupportedTransferCoding,), 501, "Not Implemented",
     "unsupported_transfer_coding", "Only the chunked transfer coding is supported."),
)

# InvalidHeader(Name) subclasses raised for a header the app itself tried to send: the
# app's fault, which gunicorn rightly answers with a 500.
_APP_FAULTS = (http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName)


class Refusal(NamedTuple):
    status: str  # "431 Request Header Fields Too Large"
    body: bytes

    def response(self) -> bytes:
        head = (
            f"HTTP/1.1 {self.status}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            # Whatever follows on the connection cannot be trusted to start a request.
            "Connection: close\r\n"
            "\r\n"
        )
        return head.encode("ascii") + self.body


def refusal_for(exc: BaseException) -> Refusal | None:
    """engage's answer to a request gunicorn refused with `exc`; None when gunicorn's
    own answer stands."""
    if isinstance(exc, _APP_FAULTS):
        return None
    for kinds, status, reason, code, message in _REFUSALS:
        if isinstance(exc, kinds):
            # As Flask's jsonify writes it: compact, newline-terminated.
            body = json.dumps(error_document(code, message), separators=(",", ":")) + "\n"
            return Refusal(f"{status} {reason}", body.encode("ascii"))
    return None


class JSONRefusals(base.Worker):
    """Worker mixin: requests gunicorn refuses get engage's JSON error."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        refusal = refusal_for(exc)
        if refusal is None:
            super().handle_error(req, client, addr, exc)
            return
        # gunicorn's own line names the peer's address; engage never logs one.
        self.log.warning("Invalid request: %s", exc)
        if req is None:  # a bad header carries the request it was read for
            req = getattr(exc, "req", None)
        if req is not None and self.log.access_log_enabled:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = "-", "-"
            resp = Response(req, client, self.cfg)
            resp.status = refusal.status
            resp.response_length = len(refusal.body)
            self.log.access(resp, req, environ, timedelta(0))
        try:
            util.write_nonblock(client, refusal.response())
        except Exception:
            self.log.debug("Failed to send error message.")
        self._record(refusal, req)

    def _record(self, refusal: Refusal, req: Any) -> None:
        """The refusal's request line and metric, as engage writes for every request.
        Imported here: the master process loads this class without the app."""
        from engage import logs, metrics

        status = int(refusal.status[:3])
        method = getattr(req, "method", None) or "-"
        config = getattr(self.wsgi, "config", {})
        logs.refused(status, method, bool(config.get("LOG_JSON", True)))
        metrics.request_refused(status, method)


class SyncWorker(JSONRefusals, sync.SyncWorker):
    """gunicorn's sync worker (`-k engage.server.SyncWorker`)."""


class ThreadWorker(JSONRefusals, gthread.ThreadWorker):
    """gunicorn's gthread worker (`-k engage.server.ThreadWorker --threads N`)."""


def gunicorn_config_path() -> str | None:
    """The repository's gunicorn.conf.py, when engage runs from a checkout."""
    path = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    return str(path) if path.exists() else None


def run_gunicorn(bind: str, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class EngageApplication(BaseApplication):
        def load_config(self) -> None:
            # Also when installed without the checkout's gunicorn.conf.py.
            self.cfg.set("worker_class", "engage.server.SyncWorker")
            config_file = gunicorn_config_path()
            if config_file:
                # BaseApplication has no config-file loader: read the file as gunicorn -c
                # would, keeping only names gunicorn knows (hooks included).
                for name, value in runpy.run_path(config_file).items():
                    if name in self.cfg.settings and value is not None:
                        self.cfg.set(name.lower(), value)
            self.cfg.set("bind", [bind])
            self.cfg.set("workers", workers)

        def load(self) -> Any:
            from engage import create_app

            return create_app()

    EngageApplication().run()


# -- granian -------------------------------------------------------------------------------
# Python threads per granian worker (granian starts them as requests need them). A thread
# waiting on a client's slow body or on Redis holds no GIL, so it costs memory, not CPU;
# each slow body holds one, so with fewer of them a few hundred slow clients would make
# reads wait.
THREADS = 128
# A client has this long to send its request headers; then granian closes the connection
# (without an answer: it has no request to answer). Idle kept-alive connections too.
HEADER_TIMEOUT_MS = 10_000
# Connections one granian worker holds at once; more wait in the listen queue. An idle
# connection (granian never times one out) costs a few KB in Rust and a file descriptor,
# so this is set far above what traffic needs: with granian's default (512) about a
# thousand idle connections stopped the service.
CONNECTIONS = 16_384
# A request body that took longer than this (seconds) to arrive gets 408 (BodyDeadline).
BODY_TIMEOUT = 10.0
# Seconds granian gives a stopping worker to finish the requests it has started.
GRACEFUL_TIMEOUT = 20


class MetricsDirectory:
    """PROMETHEUS_MULTIPROC_DIR for the serving processes.

    Set before anything imports prometheus_client (the client picks its storage then).
    A configured directory is emptied of the files of an earlier run (they would add old
    counts); without one, a temporary directory is made and removed when the server
    exits. Only the process that opened it closes it: forked workers inherit the object.
    """

    def __init__(self, path: str, temporary: bool) -> None:
        self.path = path
        self.temporary = temporary
        self.owner = os.getpid()

    @classmethod
    def open(cls) -> MetricsDirectory:
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not path:
            path = tempfile.mkdtemp(prefix="engage-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
            return cls(path, temporary=True)
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
        return cls(path, temporary=False)

    def close(self) -> None:
        if self.temporary and os.getpid() == self.owner:
            shutil.rmtree(self.path, ignore_errors=True)


class BodyDeadline:
    """WSGI middleware: a request body that took longer than `timeout` seconds to arrive
    is refused with 408 `request_timeout` instead of being acted on.

    granian hands a body to the app as it arrives and has no deadline of its own for it
    (its header deadline ends at the blank line). The reading thread holds no GIL while
    it waits, so slow bodies cost threads, not CPU; THREADS keeps enough of them. The
    read cannot be interrupted from Python (reading it in another thread to give up
    earlier stalled whole workers in bench/servers.py), so the answer comes when the body
    is complete, or never, when the client gives up first. The body (at most
    MAX_CONTENT_LENGTH; Flask refuses longer ones unread) is read here once and handed on.
    """

    def __init__(self, app: Any, timeout: float, max_length: int) -> None:
        self.app = app
        self.timeout = timeout
        self.max_length = max_length
        body = json.dumps(error_document(
            "request_timeout", f"The request body took longer than {timeout:g} s to arrive."),
            separators=(",", ":")) + "\n"
        self.refusal = body.encode("ascii")

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        size = self._size(environ)
        if size:
            started = time.monotonic()
            body = environ["wsgi.input"].read(size)
            if time.monotonic() - started > self.timeout:
                return self._refuse(environ, start_response)
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)

    def _size(self, environ: dict[str, Any]) -> int:
        """Bytes to read ahead: 0 when there is no body or Flask refuses it unread."""
        length = environ.get("CONTENT_LENGTH")
        if length:
            try:
                size = int(length)
            except ValueError:
                return 0  # werkzeug answers a bad length
            return size if 0 < size <= self.max_length else 0
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            return self.max_length + 1  # one more byte lets Flask see it is too long
        return 0

    def _refuse(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        from engage import logs, metrics

        method = environ.get("REQUEST_METHOD", "-")
        logs.refused(408, method, bool(getattr(self.app, "config", {}).get("LOG_JSON", True)))
        metrics.request_refused(408, method)
        start_response("408 Request Timeout", [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(self.refusal))),
            ("Connection", "close"),
        ])
        return [self.refusal]


def granian_app() -> Any:
    """The WSGI app each granian worker serves (granian calls this factory)."""
    from engage import create_app

    app = create_app()
    return BodyDeadline(app, BODY_TIMEOUT, int(app.config["MAX_CONTENT_LENGTH"]))


def run_granian(bind: str, workers: int, target: str = "engage.server:granian_app") -> None:
    """Serve the WSGI app that the factory `target` ("module:function") returns; the
    benchmark passes another to measure its own view under the same settings."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    # Every connection is a file descriptor; many systems start a process at 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONNECTIONS * workers + 1024
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit), hard))
    host, _, port = bind.rpartition(":")
    Granian(
        target,
        factory=True,
        interface=Interfaces.WSGI,
        address=host or "127.0.0.1",
        port=int(port),
        workers=workers,
        blocking_threads=THREADS,
        backpressure=CONNECTIONS,
        backlog=4096,  # what Linux allows by default (net.core.somaxconn)
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_TIMEOUT_MS),
        websockets=False,
        # A worker that dies (killed, crashed) is replaced; the others keep serving.
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_TIMEOUT,
        # engage writes one line per request itself.
        log_access=False,
    ).serve()


def serve(bind: str, workers: int, server: str = "granian") -> None:
    if server == "gunicorn":
        run_gunicorn(bind, workers)
    else:
        run_granian(bind, workers)
