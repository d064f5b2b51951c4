"""One JSON error shape for every failure.

Every error body is `{"error": {"code", "message", "fields"?}}`. engage's HTTP errors
subclass werkzeug's HTTP exceptions so Flask's, flask-smorest's and webargs' errors all
pass through the same handler. An error class is the whole of one answer: status, code,
message and the reason a vote ending in it is counted refused (metrics.REJECT_REASONS).
The store raises the refusals (`REFUSALS`) itself; a Redis outage (`store.UNAVAILABLE`)
is answered here.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, g, jsonify
from werkzeug.exceptions import HTTPException

# werkzeug's exception names are prose; the contract wants stable snake_case codes.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    503: "storage_unavailable",
}
# What a vote answered with one of those errors is counted as (webargs' 422).
_FOREIGN_REASONS = {400: "invalid", 422: "invalid"}


class EngageError(HTTPException):
    """Base of engage's own errors: a status, a code, a sentence, maybe headers."""

    code: int = 400
    error_code = "bad_request"
    message = "The request could not be handled."
    reason: str | None = None  # a vote ending in this error is not counted as refused

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.fields = fields
        self.extra_headers = headers or {}


class BadRequest(EngageError):
    code = 400
    error_code = "bad_request"
    message = "The request is malformed."
    reason = "invalid"


class MalformedJson(BadRequest):
    error_code = "malformed_json"
    message = "The body is not valid JSON."


class InvalidReader(EngageError):
    code = 401
    error_code = "invalid_reader"
    message = "The reader token is missing, malformed or forged."


class ReaderExpired(InvalidReader):
    error_code = "reader_expired"
    message = ("The reader token is older than ENGAGE_READER_TOKEN_DAYS: renew it with "
               "POST /api/v1/readers/renew.")


class ReaderRevoked(InvalidReader):
    message = "This reader token was renewed since, or its reader's data erased."


class Unauthorized(EngageError):
    code = 401
    error_code = "unauthorized"
    message = "A valid API token is required."


class Forbidden(EngageError):
    code = 403
    error_code = "forbidden"
    message = "Your role does not allow this."


class NotFound(EngageError):
    code = 404
    error_code = "not_found"
    message = "No such resource."
    reason = "unknown"


class UnknownArticle(NotFound):
    error_code = "unknown_article"
    message = "No article is registered under this id."


class Conflict(EngageError):
    code = 409
    error_code = "conflict"
    message = "The resource is in a state that does not allow this."
    reason = "closed"


class UnsupportedMediaType(EngageError):
    code = 415
    error_code = "unsupported_media_type"
    message = "Send the body as application/json."


class ValidationFailed(EngageError):
    code = 422
    error_code = "validation_failed"
    message = "Some fields are invalid."
    reason = "invalid"


class Throttled(EngageError):
    code = 429
    error_code = "throttled"
    message = "Too many votes from your network on this item; try again later."
    reason = "throttled"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})


class RateLimited(Throttled):
    """An address, or its network, used up a budget not tied to one article (reader
    tokens minted, impression reports)."""

    error_code = "rate_limited"
    message = "Too many requests; slow down and retry later."


class StorageUnavailable(EngageError):
    code = 503
    error_code = "storage_unavailable"
    message = "Storage is unavailable; please retry shortly."
    reason = "unavailable"


class BadVoteLink(BadRequest):
    error_code = "bad_vote_link"
    message = ("This vote link is not valid: it was changed or cut short. Open the link "
               "from the newsletter again.")


class ExpiredVoteLink(EngageError):
    code = 410
    error_code = "vote_link_expired"
    message = "This vote link has expired: votes by email close a while after sending."
    reason = "invalid"


class UnknownPoll(NotFound):
    error_code = "unknown_poll"
    message = "No poll exists under this id."


class UnknownSite(NotFound):
    error_code = "unknown_site"
    message = "No site exists under this name."


class UnknownLink(NotFound):
    message = "No such link."


class UnknownAlertRule(NotFound):
    message = "No alert rule exists under this id."


class PollClosed(Conflict):
    error_code = "poll_closed"
    message = "The poll is closed; votes are no longer accepted."


class PollFinal(PollClosed):
    """An edit of a closed poll: its results are final until it is reopened."""

    message = "The poll is closed; reopen it before editing it."


class IdTaken(Conflict):
    error_code = "id_taken"
    message = "That id is already in use."


class InvalidOptions(ValidationFailed):
    """Options the poll does not take, by the rule they broke (a key of `RULES`)."""

    RULES = {
        "unknown": "Unknown option id for this poll.",
        "single": "This poll takes one option only.",
        "max": "More options than this poll allows (max_choices).",
    }

    def __init__(self, rule: str) -> None:
        super().__init__(fields={"options": [self.RULES[rule]]})


class InvalidChoice(ValidationFailed):
    """A choice, or reason, outside the article's reaction set: `field` is `choice` or
    `reason`, `allowed` the comma-joined ones it may be, and `reason_choice` (when
    given) the only choice a reason may come with."""

    def __init__(self, field: str, allowed: str, reason_choice: str = "") -> None:
        if reason_choice:
            message = f"Only a '{reason_choice}' may carry a reason."
        elif allowed:
            message = f"Must be one of: {', '.join(allowed.split(','))}."
        else:
            message = "This article's choices take no reason."
        super().__init__(fields={field: [message]})


class ClosesAtPassed(ValidationFailed):
    def __init__(self) -> None:
        super().__init__(fields={"closes_at": [
            "The poll's closes_at has passed; send a later one (or null) to reopen it."]})


# What the store refuses on behalf of the data. A Lua script returns one by its class name
# (store/scripts.py) followed by the values its constructor takes, and the store raises it.
REFUSALS: tuple[type[EngageError], ...] = (
    UnknownArticle, UnknownPoll, UnknownLink, IdTaken, Throttled, PollClosed, PollFinal,
    InvalidOptions, ClosesAtPassed, RateLimited, InvalidChoice,
)


def error_document(
    code: str, message: str, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The error shape itself, for answers sent without Flask (engage.server's workers)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify(error_document(code, message, fields))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _fields_from_webargs(exc: HTTPException) -> dict[str, list[str]] | None:
    """webargs nests messages by location; the contract wants field -> messages."""
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, dict):
        return None
    fields: dict[str, list[str]] = {}
    for location_messages in messages.values():
        if isinstance(location_messages, dict):
            for name, value in location_messages.items():
                if isinstance(name, int) and isinstance(value, dict):
                    # A list body (the links): keyed by field, the item counted from 1.
                    for field, inner in value.items():
                        fields.setdefault(str(field), []).extend(
                            f"Item {name + 1}: {m}" for m in _flatten(inner))
                else:
                    fields[str(name)] = _flatten(value)
        elif isinstance(location_messages, list):
            fields.setdefault("_schema", []).extend(str(m) for m in location_messages)
    return fields or None


def _flatten(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) if not isinstance(v, dict | list) else repr(v) for v in value]
    if isinstance(value, dict):
        out: list[str] = []
        for key, inner in value.items():
            out.extend(f"{key}: {msg}" for msg in _flatten(inner))
        return out
    return [str(value)]


def note_refusal(exc: HTTPException) -> None:
    """Record why the request was refused, for the vote metrics (engage.metrics)."""
    g.refusal_reason = (exc.reason if isinstance(exc, EngageError)
                        else _FOREIGN_REASONS.get(exc.code or 500))


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    note_refusal(exc)
    if isinstance(exc, EngageError):
        return error_response(status, exc.error_code, exc.message, exc.fields, exc.extra_headers)
    headers = {k: v for k, v in exc.get_headers() if k.lower() not in {"content-type"}}
    fields = _fields_from_webargs(exc)
    code = _STATUS_CODES.get(status, "http_" + str(status))
    message = exc.description or "The request could not be handled."
    if status == 404:
        message = "No such resource."
    elif status == 422:
        named = sorted(name for name in fields or {} if name != "_schema")
        message = "Some fields are invalid" + (f": {', '.join(named)}." if named else ".")
    return error_response(status, code, message, fields, headers)


def handle_unavailable(exc: Exception) -> Response:
    current_app.logger.warning("redis unavailable: %s", exc)
    retry_after = str(current_app.config["RETRY_AFTER"])
    return handle_http_exception(StorageUnavailable(headers={"Retry-After": retry_after}))


def handle_unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "Something went wrong on our side.")


def init_app(app: Flask) -> None:
    from engage.store import UNAVAILABLE  # not at the top: the store imports this module

    app.register_error_handler(HTTPException, handle_http_exception)
    for exc_type in UNAVAILABLE:
        app.register_error_handler(exc_type, handle_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
