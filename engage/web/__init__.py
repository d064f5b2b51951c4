"""HTML, assets and ops endpoints outside the JSON API."""

from __future__ import annotations

from importlib import import_module

from flask import Flask

# One module per page group, each exposing `bp`; one line each so rooms do not collide.
WEB_MODULES = (
    "ops",
    "api_docs",
    "embed",
    "ballot",
    "metrics_view",
    "dashboard",
    "editor",
    "admin",
    "alerts",
    "oidc",
)


def init_app(app: Flask) -> None:
    for name in WEB_MODULES:
        app.register_blueprint(import_module(f"engage.web.{name}").bp)
