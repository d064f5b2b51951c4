"""One JSON error shape for every failure.

Every error body is `{"error": {"code", "message", "fields"?}}`. engage's HTTP errors
subclass werkzeug's HTTP exceptions so Flask, flask-smorest and Flask-Limiter errors all
pass through the same handler. The store speaks its own language: its refusals
(`store/exceptions.py`) and a Redis outage (`store.UNAVAILABLE`) are answered here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException

from engage.store import UNAVAILABLE
from engage.store import exceptions as refusals

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


class EngageError(HTTPException):
    """Base of engage's own errors: a status, a code, a sentence, maybe headers."""

    code: int = 400
    error_code = "bad_request"
    message = "The request could not be handled."

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


class MalformedJson(EngageError):
    code = 400
    error_code = "malformed_json"
    message = "The body is not valid JSON."


class InvalidReader(EngageError):
    code = 401
    error_code = "invalid_reader"
    message = "The reader token is missing, malformed or forged."


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


class UnknownArticle(NotFound):
    error_code = "unknown_article"
    message = "No article is registered under this id."


class Conflict(EngageError):
    code = 409
    error_code = "conflict"
    message = "The resource is in a state that does not allow this."


class UnsupportedMediaType(EngageError):
    code = 415
    error_code = "unsupported_media_type"
    message = "Send the body as application/json."


class ValidationFailed(EngageError):
    code = 422
    error_code = "validation_failed"
    message = "Some fields are invalid."


class Throttled(EngageError):
    code = 429
    error_code = "throttled"
    message = "Too many votes from your network on this item; try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})


class StorageUnavailable(EngageError):
    code = 503
    error_code = "storage_unavailable"
    message = "Storage is unavailable; please retry shortly."


class UnknownPoll(NotFound):
    error_code = "unknown_poll"
    message = "No poll exists under this id."


class PollClosed(Conflict):
    error_code = "poll_closed"
    message = "The poll is closed."


class IdTaken(Conflict):
    error_code = "id_taken"
    message = "That id is already in use."


_OPTION_RULES = {
    "unknown": "Unknown option id for this poll.",
    "single": "This poll takes one option only.",
    "max": "More options than this poll allows (max_choices).",
}

# The answer to each refusal of the store.
_REFUSALS: dict[type[refusals.StoreRefusal], Callable[[Any], EngageError]] = {
    refusals.UnknownArticle: lambda _: UnknownArticle(),
    refusals.UnknownPoll: lambda _: UnknownPoll(),
    refusals.IdTaken: lambda _: IdTaken(),
    refusals.Throttled: lambda exc: Throttled(exc.retry_after),
    refusals.PollClosed: lambda _: PollClosed("The poll is closed; votes are no longer accepted."),
    refusals.PollFinal: lambda _: PollClosed("The poll is closed; reopen it before editing it."),
    refusals.InvalidOptions: lambda exc: ValidationFailed(
        fields={"options": [_OPTION_RULES[exc.reason]]}),
    refusals.ClosesAtPassed: lambda _: ValidationFailed(fields={"closes_at": [
        "The poll's closes_at has passed; send a later one (or null) to reopen it."]}),
}


def http_error(exc: refusals.StoreRefusal) -> EngageError:
    """The HTTP error a refusal of the store is answered with."""
    return _REFUSALS[type(exc)](exc)


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
    for name, value in (headers or {}).items():
        response.headers[name] = value
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


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if isinstance(exc, EngageError):
        return error_response(status, exc.error_code, exc.message, exc.fields, exc.extra_headers)
    headers = {k: v for k, v in exc.get_headers() if k.lower() not in {"content-type"}}
    fields = _fields_from_webargs(exc)
    code = _STATUS_CODES.get(status, "http_" + str(status))
    message = exc.description or "The request could not be handled."
    if status == 404:
        message = "No such resource."
    elif status == 422:
        message = "Some fields are invalid."
    elif status == 429:
        code = "rate_limited"
        message = "Too many requests; slow down and retry later."
        headers.setdefault("Retry-After", str(current_app.config.get("RETRY_AFTER", 5)))
    elif status == 503:
        headers.setdefault("Retry-After", str(current_app.config.get("RETRY_AFTER", 5)))
    return error_response(status, code, message, fields, headers)


def handle_refusal(exc: refusals.StoreRefusal) -> Response:
    return handle_http_exception(http_error(exc))


def handle_unavailable(exc: Exception) -> Response:
    current_app.logger.warning("redis unavailable: %s", exc)
    retry_after = str(current_app.config["RETRY_AFTER"])
    return handle_http_exception(StorageUnavailable(headers={"Retry-After": retry_after}))


def handle_unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "Something went wrong on our side.")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(refusals.StoreRefusal, handle_refusal)
    for exc_type in UNAVAILABLE:
        app.register_error_handler(exc_type, handle_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
