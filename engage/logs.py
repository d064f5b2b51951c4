"""One log line per request, and the request id that ties it to the caller's logs.

The id comes from `X-Request-ID` when the caller (a load balancer, usually) sends a
short, plain one, and is generated otherwise; the response echoes it. The line holds
the route template, never the path or query (which may carry tokens), and never the
client address.

Each line is a record of the `engage.request` logger carrying its fields in `request`;
`RequestFormatter` renders it as one JSON object, or as a plain line when the app has
LOG_JSON off. An operator may attach handlers and filters as to any logger.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.serving import WSGIRequestHandler

REQUEST_ID_HEADER = "X-Request-ID"
# Short and plain so a hostile id cannot forge log lines or bloat them.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")

logger = logging.getLogger("engage.request")
_HANDLER_NAME = "engage.request.stderr"


class AddresslessRequestHandler(WSGIRequestHandler):
    """The development server's own request lines, without the client's address: engage
    keeps no reader's address, in its logs either."""

    def address_string(self) -> str:
        return "-"


class RequestFormatter(logging.Formatter):
    """A request record as one line of JSON (`ts`, `event`, then its fields), or as
    its plain message when the record says `as_json=False`."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] | None = getattr(record, "request", None)
        if fields is None or not getattr(record, "as_json", True):
            return super().format(record)
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return json.dumps({"ts": ts, "event": "request", **fields}, separators=(",", ":"))


def request_id() -> str:
    """The current request's id (made on first use)."""
    rid: str | None = g.get("request_id")
    if rid is None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        rid = g.request_id = offered if REQUEST_ID_RE.fullmatch(offered) else uuid.uuid4().hex
    return rid


def _log(method: str, route: str, status: int, seconds: float | None, rid: str,
         as_json: bool) -> None:
    method = method[:10]
    duration_ms = round(seconds * 1000, 2) if seconds is not None else None
    logger.info(
        "%s %s %s %sms %s", method, route, status, "-" if duration_ms is None else duration_ms,
        rid,
        extra={
            "as_json": as_json,
            "request": {"method": method, "route": route, "status": status,
                        "duration_ms": duration_ms, "request_id": rid},
        },
    )


def request_answered(response: Response, route: str, method: str,
                     seconds: float | None) -> None:
    """Tag the response with its request id and write the request's line: `route` is
    the URL rule ("unmatched" without one), `method` as sent."""
    rid = request_id()
    response.headers[REQUEST_ID_HEADER] = rid
    _log(method, route, response.status_code, seconds, rid, current_app.config["LOG_JSON"])


def refused(status: int, method: str, as_json: bool) -> None:
    """The line of a request the HTTP server refused before the app saw it
    (engage.server): route "refused", no duration, a fresh id (none could be read)."""
    _log(method, "refused", status, None, uuid.uuid4().hex, as_json)


def init_app(app: Flask) -> None:
    """Request lines go to stderr, through one handler however many apps a process
    makes; the app factory calls `request_answered` from its first hook, so even a
    request refused early gets its line."""
    if any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(RequestFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
