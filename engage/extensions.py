"""Third-party Flask extensions, created unbound and initialised in the factory."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_qualified_name

from engage import current_request


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

    The decorator runs its check through this filter too, so a limited view must
    always answer False here.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    limited: dict[str, bool] | None = app.extensions.get("engage.limited_endpoints")
    if limited is None:
        return False  # app-wide limits configured: every request is checked
    return not _is_limited(app, limited, current_request().endpoint)


def _is_limited(app: Flask, limited: dict[str, bool], endpoint: str | None) -> bool:
    """Whether a limit can apply to the endpoint's view: Flask-Limiter itself marked it
    (the same test it makes: the qualified name of the decorated view, or an endpoint
    hint). Unmatched requests cannot be (Flask-Limiter exempts them itself). The answer
    is kept per endpoint in `limited`; views never change once registered.
    """
    if endpoint is None:
        return False
    answer = limited.get(endpoint)
    if answer is None:
        view = app.view_functions.get(endpoint)
        answer = view is not None and (
            get_qualified_name(view) in limiter._marked_for_limiting
            or limiter.limit_manager.has_hints(endpoint)
        )
        limited[endpoint] = answer
    return answer


def _take_hook(funcs: list[Any], belongs: Callable[[Any], bool]) -> tuple[int, Any]:
    """The position and the hook of the first of `funcs` that `belongs`, or (-1, None)."""
    for index, func in enumerate(funcs):
        if belongs(func):
            return index, func
    return -1, None


def _is_limiter_hook(func: Any) -> bool:
    owner = getattr(func, "__self__", None) or next(iter(getattr(func, "args", ())), None)
    return owner is limiter


def _is_cors_hook(func: Any) -> bool:
    return bool(getattr(func, "__module__", "").startswith("flask_cors"))


def _install_hooks(app: Flask) -> None:
    """Flask-Limiter's and flask-cors's hooks, made cheap for the requests they have
    nothing to do for, and the Vary: Origin of every API answer.

    Without app-wide limits, Flask-Limiter's own hooks (check, header injection,
    context release) run only for views a limit can apply to: for any other request
    they would still build its request context, find no limit and add nothing.

    flask-cors's after_request runs only for API requests that send an Origin header:
    every allowed origin is an exact pattern (no "*"), so for a request without Origin
    it adds nothing (no allowed origin to name, and no Vary of its own), and it never
    touches paths outside /api/v1/. Skipping it there saves its resource matching.

    Their after_request hooks and the Vary merge run from one hook, in the order Flask
    ran them as separate hooks: flask-cors, the Vary merge (which sees flask-cors's own
    Vary line), Flask-Limiter's headers. Hooks are matched by identity, so anything
    else is left alone, and one not found is simply not called.
    """
    limited: dict[str, bool] | None = app.extensions.get("engage.limited_endpoints")
    before_funcs = app.before_request_funcs.setdefault(None, [])
    after_funcs = app.after_request_funcs.setdefault(None, [])
    teardown_funcs = app.teardown_request_funcs.setdefault(None, [])

    def can_be_limited(endpoint: str | None) -> bool:
        return limited is None or _is_limited(app, limited, endpoint)

    index, limiter_before = _take_hook(before_funcs, _is_limiter_hook)
    if limiter_before is not None and limited is not None:
        def guarded_before() -> Any:
            if can_be_limited(current_request().endpoint):
                return limiter_before()
            return None
        before_funcs[index] = guarded_before

    index, limiter_teardown = _take_hook(teardown_funcs, _is_limiter_hook)
    if limiter_teardown is not None and limited is not None:
        def guarded_teardown(exc: BaseException | None = None) -> None:
            if can_be_limited(current_request().endpoint):
                limiter_teardown(exc)
        teardown_funcs[index] = guarded_teardown

    cors_index, cors_after = _take_hook(after_funcs, _is_cors_hook)
    if cors_after is not None:
        del after_funcs[cors_index]
    index, limiter_after = _take_hook(after_funcs, _is_limiter_hook)
    if limiter_after is not None:
        del after_funcs[index]

    def after(response: Response) -> Response:
        req = current_request()
        # PATH_INFO under /api/ means req.path is too; not the other way round ("//api").
        if req.path.startswith("/api/"):
            environ = req.environ
            if cors_after is not None and "HTTP_ORIGIN" in environ \
                    and environ.get("PATH_INFO", "").startswith("/api/"):
                response = cors_after(response)
            _vary_on_origin(response)
        if limiter_after is not None and can_be_limited(req.endpoint):
            response = limiter_after(response)
        return response

    app.after_request(after)


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


# Vary lines a response brings -> the one merged line with Origin; few distinct ones.
_merged_vary: dict[tuple[str, ...], str] = {}


def _vary_on_origin(response: Response) -> None:
    """Every API answer varies by Origin (allowed or not), in one merged Vary header.

    Runs after flask-cors, which adds its own Vary line only for some origins; a CDN
    must never hand one origin's answer, CORS headers or not, to another.
    """
    lines = tuple(response.headers.getlist("Vary"))
    merged = _merged_vary.get(lines)
    if merged is None:
        values = [v.strip() for line in lines for v in line.split(",")]
        merged = ", ".join(dict.fromkeys(v for v in [*values, "Origin"] if v))
        if len(_merged_vary) < 256:
            _merged_vary[lines] = merged
    response.headers["Vary"] = merged


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
    # Exact matches only: flask-cors reads strings with regex characters as patterns.
    origins = [
        re.compile(re.escape(o.rstrip("/")) + r"\Z")
        for o in app.config["ALLOWED_ORIGINS"] if o != "null"
    ]
    CORS(
        app,
        resources={r"/api/v1/*": {"origins": origins}},
        supports_credentials=False,
        vary_header=True,
        allow_headers=["Content-Type", "X-Engage-Reader", "If-None-Match", "X-Request-ID"],
        expose_headers=["ETag", "Retry-After", "X-Request-ID"],
        max_age=600,
    )
    _install_hooks(app)
