"""Running the app under gunicorn from `engage serve`, and engage's gunicorn workers.

gunicorn refuses some requests itself, before the app sees them: a request line or
headers over its limits, or bytes that are not HTTP. It answers those with its own HTML
page; engage's workers answer them with engage's JSON error instead, so that every
client error has the one shape. gunicorn.conf.py selects them.
"""

from __future__ import annotations

import json
import runpy
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
