"""Third-party Flask extensions, created unbound and initialised in the factory."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, Response, current_app, request
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_qualified_name


def _limit_key() -> str:
    # Flask-Limiter stores its key in Redis: give it the hashed address, never the raw one.
    from engage.identity import current_address_hash

    return "addr:" + current_address_hash()


limiter = Limiter(key_func=_limit_key)
# App-wide limits (default, application or meta) would apply to every route; with none
# configured only views decorated with `limiter.limit` can be limited.
_APP_WIDE_LIMITS = ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META")


@limiter.request_filter
def _cannot_be_limited() -> bool:
    """Skip Flask-Limiter's per-request work (limit resolution, the key function with
    its address hash) for requests no limit applies to: most requests, and all reads.

    A view counts as limited when Flask-Limiter itself marked it (the same test it
    makes: the qualified name of the decorated view, or an endpoint hint); the answer is
    kept per endpoint. The decorator runs its check through this filter too, so a
    limited view must always answer False here.
    """
    limited: dict[str, bool] | None = current_app.extensions.get("engage.limited_endpoints")
    if limited is None:
        return False  # app-wide limits configured: every request is checked
    endpoint = request.endpoint
    if endpoint is None:
        return True  # unmatched: Flask-Limiter exempts these itself
    answer = limited.get(endpoint)
    if answer is None:
        view = current_app.view_functions.get(endpoint)
        answer = view is not None and (
            get_qualified_name(view) in limiter._marked_for_limiting
            or limiter.limit_manager.has_hints(endpoint)
        )
        limited[endpoint] = answer
    return not answer


def _skip_hooks_when_unlimited(app: Flask) -> None:
    """Flask-Limiter's own hooks (check, header injection, context release) still build
    its request context for a request the filter exempts; guard each with the filter.

    For such a request they would find no limit and add nothing; a limited view's
    requests still run all three. Hooks are matched by identity, so anything else is
    left alone; a Flask-Limiter that registers other hooks simply keeps them unguarded.
    """
    def before(hook: Any) -> Any:
        def guarded() -> Any:
            return None if _cannot_be_limited() else hook()
        return guarded

    def after(hook: Any) -> Any:
        def guarded(response: Response) -> Response:
            return response if _cannot_be_limited() else hook(response)
        return guarded

    def teardown(hook: Any) -> Any:
        def guarded(exc: BaseException | None = None) -> None:
            if not _cannot_be_limited():
                hook(exc)
        return guarded

    def is_limiter_hook(func: Any) -> bool:
        owner = getattr(func, "__self__", None) or next(iter(getattr(func, "args", ())), None)
        return owner is limiter

    hook_lists: tuple[tuple[dict[Any, list[Any]], Any], ...] = (
        (app.before_request_funcs, before), (app.after_request_funcs, after),
        (app.teardown_request_funcs, teardown),
    )
    for hooks, wrap in hook_lists:
        funcs = hooks.get(None, [])
        funcs[:] = [wrap(f) if is_limiter_hook(f) else f for f in funcs]


def _limiter_storage_uri(config: dict[str, Any]) -> str:
    """Flask-Limiter's URI for engage's own Redis (its scheme names differ for sockets)."""
    if config.get("RATELIMIT_STORAGE_URI"):
        return str(config["RATELIMIT_STORAGE_URI"])
    url = str(config["REDIS_URL_RESOLVED"])
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://"):]
    # redis://, rediss:// and redis+cluster:// (limits' cluster storage) mean the same
    # to Flask-Limiter as to engage.
    return url


def _vary_on_origin(response: Response) -> Response:
    """Every API answer varies by Origin (allowed or not), in one merged Vary header.

    Runs after flask-cors, which adds its own Vary line only for some origins; a CDN
    must never hand one origin's answer, CORS headers or not, to another.
    """
    if not request.path.startswith("/api/"):
        return response
    values = [v.strip() for line in response.headers.getlist("Vary") for v in line.split(",")]
    merged = list(dict.fromkeys(v for v in [*values, "Origin"] if v))
    response.headers["Vary"] = ", ".join(merged)
    return response


def init_app(app: Flask) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = _limiter_storage_uri(app.config)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {
        "key_prefix": app.config["REDIS_PREFIX"] + ":rl",
        "socket_timeout": app.config["REDIS_SOCKET_TIMEOUT"],
        "socket_connect_timeout": app.config["REDIS_CONNECT_TIMEOUT"],
    })
    limiter.init_app(app)
    if not any(app.config.get(name) for name in _APP_WIDE_LIMITS):
        app.extensions["engage.limited_endpoints"] = {}
        _skip_hooks_when_unlimited(app)
    # Exact matches only: flask-cors reads strings with regex characters as patterns.
    origins = [
        re.compile(re.escape(o.rstrip("/")) + r"\Z")
        for o in app.config["ALLOWED_ORIGINS"] if o != "null"
    ]
    app.after_request(_vary_on_origin)
    CORS(
        app,
        resources={r"/api/v1/*": {"origins": origins}},
        supports_credentials=False,
        vary_header=True,
        allow_headers=["Content-Type", "X-Engage-Reader", "If-None-Match", "X-Request-ID"],
        expose_headers=["ETag", "Retry-After", "X-Request-ID"],
        max_age=600,
    )
    _cors_only_with_origin(app)


def _cors_only_with_origin(app: Flask) -> None:
    """Run flask-cors's after_request only for API requests that send an Origin header.

    Every allowed origin is an exact pattern (no "*"), so for a request without Origin
    flask-cors adds nothing (no allowed origin to name, and no Vary of its own), and it
    never touches paths outside /api/v1/; the Vary: Origin every API answer needs comes
    from `_vary_on_origin`. Skipping it there saves its resource matching per request.
    """
    funcs = app.after_request_funcs.get(None, [])
    for index, func in enumerate(funcs):
        if getattr(func, "__module__", "").startswith("flask_cors"):
            cors_after = func

            def guarded(response: Response, cors_after: Any = cors_after) -> Response:
                environ = request.environ
                if "HTTP_ORIGIN" not in environ or \
                        not environ.get("PATH_INFO", "").startswith("/api/"):
                    return response
                return cors_after(response)

            funcs[index] = guarded

