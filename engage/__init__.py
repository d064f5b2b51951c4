"""engage: reader reactions, polls and related links for news sites."""

from __future__ import annotations

from collections.abc import Callable
from types import FunctionType, MethodType
from typing import Any

from flask import Flask, Request, request

__version__ = "0.1.0"

# Plain functions remembered by `Engage.ensure_sync`: far more than engage registers,
# and a stop so that functions made per request could never grow the set for ever.
_PLAIN_LIMIT = 4096


def current_request() -> Request:
    """The request itself rather than `flask.request`, which looks the request up again
    on every attribute read: hooks that run on every request read several."""
    return request._get_current_object()  # type: ignore[attr-defined]


class Engage(Flask):
    """Flask that remembers which hooks and views are plain functions.

    Flask asks `inspect.iscoroutinefunction` of every hook, view and teardown function
    on every request, about twenty times; the answer never changes for a function, so
    it is kept. A bound method (MethodView makes a fresh one per request) is kept by
    its function, which says the same. Anything else, and every coroutine function,
    goes through Flask each time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain_functions: set[FunctionType] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = func.__func__ if type(func) is MethodType else func
        if type(key) is not FunctionType:
            return super().ensure_sync(func)
        if key in self._plain_functions:
            return func
        synced = super().ensure_sync(func)
        if synced is func and len(self._plain_functions) < _PLAIN_LIMIT:
            self._plain_functions.add(key)
        return synced


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build an app: config -> store -> identity -> extensions -> blueprints -> errors."""
    from engage import api, errors, extensions, identity, store, web
    from engage.config import load_config, resolve_secret

    app = Engage(__name__, static_folder="web/static", template_folder="web/templates")
    settings = load_config(overrides=config)
    app.config.update(settings)
    app.config["SECRET_KEY"] = resolve_secret(app.config)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    _instrument(app)  # first hooks: even early refusals are logged and counted
    store.init_app(app)
    identity.init_app(app)
    extensions.init_app(app)
    api.init_app(app)
    web.init_app(app)
    errors.init_app(app)
    return app


def _instrument(app: Flask) -> None:
    """The request log line and the HTTP metrics share one hook per phase: both need the
    route, method and timing of every request, and each hook is paid on every request.

    Registered before any other hook; the after hook, registered first, runs last, so
    the response it counts and logs is final. Metrics are counted before the line is
    written, and the teardown (which runs even when no response was made) closes the
    in-progress gauge.
    """
    from time import perf_counter

    from flask import Response, g

    from engage import logs, metrics

    logs.init_app(app)
    metrics.init_app(app)
    finish_line = logs.finisher(app.config)

    def begin() -> None:
        state = g._get_current_object()
        started = perf_counter()
        logs.begin(state, current_request().environ, started)
        metrics.request_started(state, started)

    def answer(response: Response) -> Response:
        state = g._get_current_object()
        req = current_request()
        rule = req.url_rule
        route = rule.rule if rule is not None else "unmatched"
        method = req.method
        metrics.request_answered(response, state, route, method, req.endpoint)
        finish_line(response, state, req.environ, route, method)
        return response

    def end(_exc: BaseException | None) -> None:
        metrics.request_ended(g._get_current_object())

    app.before_request(begin)
    app.after_request(answer)
    app.teardown_request(end)
