"""engage: reader reactions, polls and related links for news sites."""

from __future__ import annotations

from typing import Any

from flask import Flask

__version__ = "0.1.0"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build an app: config -> store -> identity -> extensions -> blueprints -> errors."""
    from engage import api, errors, extensions, identity, store, web
    from engage.config import load_config, resolve_secret

    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    settings = load_config(overrides=config)
    app.config.update(settings)
    app.config["SECRET_KEY"] = resolve_secret(app.config)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from engage import logs, metrics  # first hooks: even early refusals are logged and counted
    logs.init_app(app)
    metrics.init_app(app)
    store.init_app(app)
    identity.init_app(app)
    extensions.init_app(app)
    api.init_app(app)
    web.init_app(app)
    errors.init_app(app)
    return app
