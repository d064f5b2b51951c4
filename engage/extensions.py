"""Third-party Flask extensions, created unbound and initialised in the factory."""

from __future__ import annotations

import re

from flask import Flask, Response, request
from flask_cors import CORS


def vary_on_origin(response: Response) -> None:
    """Every API answer varies by Origin (allowed or not), in one merged Vary header:
    flask-cors, which runs first, adds its own line only for some origins, and a CDN
    must never hand one origin's answer, CORS headers or not, to another."""
    if request.path.startswith("/api/"):
        values = [v.strip() for line in response.headers.getlist("Vary") for v in line.split(",")]
        response.headers["Vary"] = ", ".join(dict.fromkeys(v for v in [*values, "Origin"] if v))


def init_app(app: Flask) -> None:
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
