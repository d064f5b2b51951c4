"""One log line per request, and the request id that ties it to the caller's logs.

The id comes from `X-Request-ID` when the caller (a load balancer, usually) sends a
short, plain one, and is generated otherwise; the response echoes it. The line holds
the route template, never the path or query (which may carry tokens), and never the
client address.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request

REQUEST_ID_HEADER = "X-Request-ID"
# Short and plain so a hostile id cannot forge log lines or bloat them.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

logger = logging.getLogger("engage.request")


def request_id() -> str:
    """The current request's id (made on first use)."""
    rid: str | None = g.get("request_id")
    if rid is None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        rid = offered if REQUEST_ID_RE.match(offered) else uuid.uuid4().hex
        g.request_id = rid
    return rid


def _begin() -> None:
    g.log_started = time.perf_counter()
    request_id()


def _finish(response: Response) -> Response:
    rid = request_id()
    response.headers[REQUEST_ID_HEADER] = rid
    started = g.pop("log_started", None)
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    rule = request.url_rule
    fields = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": "request",
        "method": request.method[:10],
        "route": rule.rule if rule is not None else "unmatched",
        "status": response.status_code,
        "duration_ms": duration_ms,
        "request_id": rid,
    }
    if current_app.config.get("LOG_JSON", True):
        logger.info(json.dumps(fields, separators=(",", ":")))
    else:
        logger.info(
            "%s %s %s %sms %s",
            fields["method"], fields["route"], fields["status"], duration_ms, rid,
        )
    return response


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
    """Register before other hooks so even a request refused early gets its line."""
    _configure_logger()
    app.before_request(_begin)
    app.after_request(_finish)
