"""engage: reader reactions, polls and related links for news sites."""

from __future__ import annotations

from typing import Any

from flask import Flask

__version__ = "0.1.0"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build an app: config -> store -> identity -> blueprints -> errors."""
    from engage import api, errors, identity, metrics, store, web
    from engage.config import load_config, resolve_secret

    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    settings = load_config(overrides=config)
    app.config.update(settings)
    app.config["SECRET_KEY"] = resolve_secret(app.config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # werkzeug's routing answers a path it can tidy (`//` merged, a slash added, a rule's
    # defaults spelled out) with a redirect to an absolute URL built from the request's
    # Host, which anyone can send and a cache would keep. Without those rewrites a
    # path matches as it is, with or without a trailing slash, or is a 404.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.url_map.redirect_defaults = False

    _hooks(app)  # first: even early refusals are logged and counted
    store.init_app(app)
    identity.init_app(app)
    api.init_app(app)
    web.init_app(app)
    errors.init_app(app)
    metrics.init_app(app)
    return app


def _hooks(app: Flask) -> None:
    """engage's one hook of each kind, doing each app-wide thing once per request.

    Registered before any extension's: the after hook, registered first, runs last, so
    the response it counts and logs is final. The teardown runs even when no response
    was made, so the in-progress gauge cannot leak.
    """
    from time import perf_counter

    from flask import Response, g, request
    from werkzeug.exceptions import RequestEntityTooLarge

    from engage import api, errors, extensions, logs, metrics
    from engage.store import get_store, tokens
    from engage.web import security

    logs.init_app(app)

    @app.before_request
    def begin() -> None:
        g.started = perf_counter()
        metrics.request_started()
        # 413 for a body over MAX_CONTENT_LENGTH on every route, also those that never
        # read one: werkzeug only checks the limit when a body is read.
        limit, length = request.max_content_length, request.content_length
        if limit is not None and length is not None and length > limit:
            raise RequestEntityTooLarge()
        # A streamed body has no length to check: read it (views that parse it find it
        # cached). werkzeug stops reading at the limit, so a body that fills it is taken
        # for one that goes on past it.
        if (limit is not None and length is None and request.headers.get("Transfer-Encoding")
                and len(request.get_data(cache=True)) >= limit):
            raise RequestEntityTooLarge()
        api.check_request()

    @app.after_request
    def answer(response: Response) -> Response:
        security.add_headers(response)
        extensions.answer_cors(response)
        # Popped: should a later hook fail, the error response passes here again.
        started = g.pop("started", None)
        if "Location" in response.headers or "Content-Location" in response.headers:
            # werkzeug converts these to ASCII only while sending, after every hook; a
            # value it cannot convert would go out as the server's 500 while this line
            # said otherwise. Answer the 500 here, so the status logged is the one sent.
            try:
                response.get_wsgi_headers(request.environ)
            except ValueError as exc:
                response = errors.handle_unexpected(exc)
        seconds = perf_counter() - started if started is not None else None
        rule, method = request.url_rule, request.method
        route = metrics.route_label(rule.rule) if rule is not None else "unmatched"
        metrics.request_answered(response.status_code, route, method, request.endpoint,
                                 seconds)
        logs.request_answered(response, route, method, seconds)
        # A staff token's last use: a request refused (bad input) changes nothing.
        if g.get("staff") and response.status_code < 400:
            tokens.mark_used(get_store(), g.staff)
        return response

    @app.teardown_request
    def end(_exc: BaseException | None) -> None:
        metrics.request_ended()

