"""The API reference page: Swagger UI, served from the flask-swagger-ui package's files.

No CDN and no inline script: the page loads Swagger UI's bundle from this server and
starts it with a small script of ours (static/api-docs.js), so it runs under the CSP of
every engage page (engage/web/security.py).
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, abort, render_template, send_from_directory

bp = Blueprint("api_docs", __name__)

# flask-swagger-ui ships Swagger UI's distribution in its package; we serve two files of it.
SWAGGER_UI_DIR = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
SWAGGER_UI_FILES = {"swagger-ui.css", "swagger-ui-bundle.js"}
# Renamed only by an upgrade of the package: a day of caching, then revalidation.
ASSET_MAX_AGE = 86400


@bp.get("/api/docs")
def page() -> str:
    return render_template("api_docs.html")


@bp.get("/api/docs/swagger-ui/<name>")
def swagger_ui(name: str) -> Response:
    if name not in SWAGGER_UI_FILES:
        abort(404)
    return send_from_directory(SWAGGER_UI_DIR, name, max_age=ASSET_MAX_AGE)
