"""HTML, assets and ops endpoints outside the JSON API."""

from __future__ import annotations

from flask import Flask

from engage.web import ops


def init_app(app: Flask) -> None:
    app.register_blueprint(ops.bp)
