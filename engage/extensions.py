"""Third-party Flask extensions, created unbound and initialised in the factory."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, Response, request
from flask_cors import CORS
from flask_limiter import Limiter


def _limit_key() -> str:
    # Flask-Limiter stores its key in Redis: give it the hashed address, never the raw one.
    from engage.identity import current_address_hash

    return "addr:" + current_address_hash()


limiter = Limiter(key_func=_limit_key)


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
    if request.path.startswith("/api/"):
        values = [v.strip() for line in response.headers.getlist("Vary") for v in line.split(",")]
        response.headers["Vary"] = ", ".join(dict.fromkeys(v for v in [*values, "Origin"] if v))
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
    # Registered before flask-cors, so it runs after it (Flask runs after_request
    # hooks last registered first) and sees flask-cors's Vary line.
    app.after_request(_vary_on_origin)
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
