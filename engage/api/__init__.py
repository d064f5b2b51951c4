"""JSON API under /api/v1: one blueprint module per resource, documented by flask-smorest."""

from __future__ import annotations

import json
import re
from importlib import import_module
from typing import Any

from flask import Flask, current_app, request
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema, missing
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from engage import errors, schemas
from engage.api.spec import SECURITY_SCHEMES, ApiConventions
from engage.identity import check_role, check_scope

API_PREFIX = "/api/v1"

# One module per resource, each exposing `blp`; one line each so rooms do not collide.
API_MODULES = (
    "readers",
    "articles",
    "reactions",
    "links",
    "widget_bundle",
    "stats",
    "polls",
    "webhooks",
    "sites",
    "alerts",
)
_BODY_METHODS = {"POST", "PUT", "PATCH"}


class IdConverter(BaseConverter):
    """`<eid:name>`: only well-formed ids reach a view; anything else is a 404."""

    regex = schemas.ID_PATTERN


class EngageApi(Api):
    """flask-smorest with the contract's one error shape."""

    ERROR_SCHEMA = schemas.ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return errors.handle_http_exception(error)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number too large for a float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


# A \uD800-\uDFFF escape: paired ones make one character, a lone one cannot be stored.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads_strict(raw: bytes) -> Any:
    """A request body as JSON (RFC 8259), refusing what Python's decoder lets through:
    NaN and Infinity, numbers beyond a float, duplicate keys (two parsers could read
    different values), unpaired surrogates. Raises ValueError, including for an integer
    over Python's digit limit, and RecursionError for nesting deeper than the decoder
    goes."""
    text = raw.decode("utf-8")
    value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite,
                       object_pairs_hook=_unique_keys)
    if _SURROGATE_ESCAPE.search(text):
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError if unpaired
    return value


class JsonParser(FlaskParser):
    """webargs' parser, with every failure to read the body as JSON a 400."""

    def load_json(self, req: Any, schema: Schema) -> Any:
        if not req.is_json:
            return missing
        raw = req.get_data(cache=True)
        if not raw:
            return missing  # no body: the schema reports the missing fields (422)
        try:
            return loads_strict(raw)
        except (ValueError, RecursionError):
            raise errors.MalformedJson() from None


class Blueprint(SmorestBlueprint):
    """flask-smorest's blueprint reading bodies with JsonParser; every API module's."""

    ARGUMENTS_PARSER = JsonParser()


def check_request() -> None:
    """Before any view (engage's before hook): who may call, then what body came.

    Staff routes check the token, and the site of the article or poll in the path,
    before anything reads the body or the query:
    `require_role` sits innermost under flask-smorest's decorators, which parse and
    validate first, so without this a caller with no token would learn the schema
    (422) before hearing 401. The decorator stays on the view as the declaration.
    """
    method = request.method
    if method != "OPTIONS":  # CORS preflight carries no credentials by design
        role = _required_role(request.endpoint, method)
        if role:
            check_role(role)
            check_scope()
    if method in _BODY_METHODS:
        _require_json()


def _required_role(endpoint: str | None, method: str) -> str | None:
    """The role the endpoint's view (or its MethodView method) declares, if any."""
    view = current_app.view_functions.get(endpoint or "")
    view_class = getattr(view, "view_class", None)
    name = "get" if method == "HEAD" else method.lower()
    handler = getattr(view_class, name, None) if view_class is not None else view
    return getattr(handler, "required_role", None)


def _require_json() -> None:
    """415 for a write whose body is not JSON, before webargs reads it as 'missing'."""
    if not request.path.startswith(API_PREFIX):
        return
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return  # no body at all: the schema reports the missing fields (422)
    if not request.is_json:
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
            "extra_plugins": [ApiConventions()],
            "info": {"description": "Reader reactions, polls and related links for news sites."},
            "components": {"securitySchemes": SECURITY_SCHEMES},
        },
    )
    api.register_converter(IdConverter, _id_param_schema)
    for name in API_MODULES:
        api.register_blueprint(import_module(f"engage.api.{name}").blp, url_prefix=API_PREFIX)
    app.extensions["engage.api"] = api
    return api
