"""JSON API under /api/v1: one blueprint module per resource, documented by flask-smorest."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from flask import Flask, Request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from engage import current_request, errors, schemas
from engage.identity import require_role

API_PREFIX = "/api/v1"

# One module per resource, each exposing `blp`; one line each so rooms do not collide.
API_MODULES = (
    "readers",
    "articles",
    "reactions",
    "links",
    "widget",
    "stats",
    "polls",
    "webhooks",
)
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def documented(*decorators: Any) -> Callable[[Any], Any]:
    """flask-smorest's decorators, outermost first, for the OpenAPI document only.

    For hot views that build their own Response: at run time each smorest layer adds
    an app-context lookup and an ensure_sync, then passes that Response through
    untouched (and `arguments` adds webargs' layers: such a view loads its input
    itself with the same schema). The document comes out the same.
    """
    def decorator(view: Any) -> Any:
        wrapped = view
        for decorate in reversed(decorators):
            wrapped = decorate(wrapped)
        view._apidoc = wrapped._apidoc
        return view

    return decorator


class IdConverter(BaseConverter):
    """`<eid:name>`: only well-formed ids reach a view; anything else is a 404."""

    regex = schemas.ID_PATTERN


class EngageApi(Api):
    """flask-smorest with the contract's one error shape."""

    ERROR_SCHEMA = schemas.ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return errors.handle_http_exception(error)


def _checks(app: Flask) -> Callable[[], None]:
    """The API's before_request checks, in order: who may call, then what body came.

    One hook for both, with the request and the app looked up once; they run for every
    request, most of which pass both at once.
    """
    roles: dict[tuple[str, str], str | None] = app.extensions["engage.api.roles"]

    def check() -> None:
        req = current_request()
        method = req.method
        _authorize(app, roles, req, method)
        _require_json(req, method)

    return check


def _authorize(app: Flask, roles: dict[tuple[str, str], str | None], req: Request,
               method: str) -> None:
    """Staff routes check the token before anything reads the body or the query.

    `require_role` sits innermost under flask-smorest's decorators, which parse and
    validate first; without this a caller with no token would learn the schema (422)
    before hearing 401. The decorator stays on the view as the declaration and a
    second check.
    """
    if method == "OPTIONS":
        return  # CORS preflight carries no credentials by design
    endpoint = req.endpoint or ""
    try:
        role = roles[(endpoint, method)]
    except KeyError:  # first request of this kind: views never change once registered
        role = _required_role(app, endpoint, method)
        if len(roles) < 1024:  # methods come from the client: keep the table bounded
            roles[(endpoint, method)] = role
    if role:
        require_role(role)(lambda: None)()


def _required_role(app: Flask, endpoint: str, method: str) -> str | None:
    view = app.view_functions.get(endpoint)
    view_class = getattr(view, "view_class", None)
    name = "get" if method == "HEAD" else method.lower()
    handler = getattr(view_class, name, None) if view_class is not None else view
    return getattr(handler, "required_role", None)


def _require_json(req: Request, method: str) -> None:
    """415 for a write whose body is not JSON, before webargs reads it as 'missing'."""
    if method not in _BODY_METHODS or not req.path.startswith(API_PREFIX):
        return
    if not req.content_length and not req.headers.get("Transfer-Encoding"):
        return  # no body at all: the schema reports the missing fields (422)
    if not req.is_json:
        raise errors.UnsupportedMediaType()


def _id_param_schema(_converter: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{schemas.ID_PATTERN}$"}


def init_app(app: Flask) -> EngageApi:
    app.url_map.converters["eid"] = IdConverter
    app.config.setdefault("API_TITLE", "engage")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = EngageApi(
        app,
        spec_kwargs={
            "info": {"description": "Reader reactions, polls and related links for news sites."},
            "components": {
                "securitySchemes": {
                    "editorToken": {"type": "http", "scheme": "bearer"},
                    "readerToken": {
                        "type": "apiKey", "in": "header", "name": "X-Engage-Reader",
                    },
                }
            },
        },
    )
    api.register_converter(IdConverter, _id_param_schema)
    for name in API_MODULES:
        api.register_blueprint(import_module(f"engage.api.{name}").blp, url_prefix=API_PREFIX)
    app.extensions["engage.api.roles"] = {}
    app.before_request(_checks(app))
    app.extensions["engage.api"] = api
    return api
