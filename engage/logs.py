"""One log line per request, and the request id that ties it to the caller's logs.

The id comes from `X-Request-ID` when the caller (a load balancer, usually) sends a
short, plain one, and is generated otherwise; the response echoes it. The line holds
the route template, never the path or query (which may carry tokens), and never the
client address.

The line is on every request's path, so it is built with one f-string from parts that
need no escaping (or were escaped once, per route) and, while nobody has added a
handler or filter of their own, written straight to the handler's stream: the logging
machinery and a json.dumps per request cost more than a cheap view itself. Anything
attached to the logger (a test's handler, an operator's filter) gets the same line
through `logger.info` instead.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
# Short and plain so a hostile id cannot forge log lines or bloat them.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

logger = logging.getLogger("engage.request")
_INFO = logging.INFO

# JSON string literals of route templates and methods, made once each.
_quoted: dict[str, str] = {}


def _quote(text: str) -> str:
    quoted = _quoted.get(text)
    if quoted is None:
        quoted = json.dumps(text)
        if len(_quoted) < 4096:  # routes and real methods are few; odd methods are not kept
            _quoted[text] = quoted
    return quoted


def request_id() -> str:
    """The current request's id (made on first use)."""
    return _request_id(g._get_current_object(), request.environ)


def _request_id(state: Any, environ: dict[str, Any]) -> str:
    rid: str | None = state.get("request_id")
    if rid is None:
        offered = environ.get(_REQUEST_ID_ENVIRON, "")
        rid = offered if REQUEST_ID_RE.match(offered) else uuid.uuid4().hex
        state.request_id = rid
    return rid


def begin(state: Any, environ: dict[str, Any], started: float) -> None:
    """A request starts: `state` is its `g`, `started` its perf_counter reading."""
    state.log_started = started
    _request_id(state, environ)


def _direct_handler() -> logging.StreamHandler[Any] | None:
    """Engage's own handler when it is the logger's only way out, so the line can skip
    records, filters and formatters (which would not change it); None otherwise."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.filters or not logger.isEnabledFor(_INFO):
        return None
    handler = handlers[0]
    if not getattr(handler, "engage_request_log", False) or handler.filters \
            or handler.level > _INFO:
        return None
    return handler  # type: ignore[return-value]


def _emit(line: str) -> None:
    handler = _direct_handler()
    if handler is None:
        logger.info("%s", line)
        return
    with handler.lock:  # type: ignore[union-attr]
        try:
            stream = handler.stream
            stream.write(line + "\n")
            stream.flush()
        except Exception:  # what StreamHandler.emit does: report, never fail the request
            handler.handleError(logger.makeRecord(
                logger.name, _INFO, __file__, 0, line, (), None))


def finisher(config: Any) -> Callable[[Response, Any, dict[str, Any], str, str], None]:
    """The function that tags a finished response with its request id and writes the
    request's line: `route` is the URL rule ("unmatched" without one), `method` as sent."""
    def finish(response: Response, state: Any, environ: dict[str, Any], route: str,
               method: str) -> None:
        rid = _request_id(state, environ)
        response.headers[REQUEST_ID_HEADER] = rid
        started = state.pop("log_started", None)
        duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        method = method[:10]
        if config.get("LOG_JSON", True):
            # json.dumps of a float is its repr; the id matched REQUEST_ID_RE or is hex.
            _emit(
                f'{{"ts":"{datetime.now(UTC).isoformat(timespec="milliseconds")}",'
                f'"event":"request","method":{_quote(method)},"route":{_quote(route)},'
                f'"status":{response.status_code},'
                f'"duration_ms":{"null" if duration_ms is None else repr(duration_ms)},'
                f'"request_id":"{rid}"}}'
            )
        else:
            _emit(f"{method} {route} {response.status_code} {duration_ms}ms {rid}")

    return finish


def refused(status: int, method: str, as_json: bool) -> None:
    """The line of a request the HTTP server refused before the app saw it
    (engage.server): route "refused", no duration, a fresh id (none could be read)."""
    rid = uuid.uuid4().hex
    method = method[:10]
    if as_json:
        _emit(
            f'{{"ts":"{datetime.now(UTC).isoformat(timespec="milliseconds")}",'
            f'"event":"request","method":{_quote(method)},"route":"refused",'
            f'"status":{status},"duration_ms":null,"request_id":"{rid}"}}'
        )
    else:
        _emit(f"{method} refused {status} -ms {rid}")


def _configure_logger() -> None:
    """Messages are already formatted lines; write them to stderr as they are."""
    if any(getattr(h, "engage_request_log", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.engage_request_log = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def init_app(app: Flask) -> None:
    """The logger; the app factory calls `begin` and a `finisher` from its first hooks
    (shared with the HTTP metrics), so even a request refused early gets its line."""
    _configure_logger()
