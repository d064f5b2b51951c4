"""Reactions: "Do you like this article?"."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError
from werkzeug.http import http_date

from engage import current_request, errors, metrics, schemas
from engage.api import documented
from engage.identity import current_address_hash, current_reader
from engage.store import get_store, reactions
from engage.store.reactions import Reactions

blp = Blueprint("reactions", __name__, description="Reader reactions on articles.")


def _body(article_id: str, result: Reactions) -> dict[str, Any]:
    body: dict[str, Any] = {
        "article": article_id,
        "counts": result.counts,
        "total": result.total,
        "mine": result.mine,
    }
    if result.reason:
        body["reason"] = result.reason
    return body


def cacheable(payload: dict[str, Any], vary: tuple[str, ...] = ("X-Engage-Reader",)
              ) -> Response:
    """A public, short-lived response with an ETag; 304 when the client has it.

    A CDN or reverse proxy may serve it for CACHE_MAX_AGE seconds and a stale copy
    while it revalidates. `vary` names the request headers that would change the
    answer (a reader token or staff token turns it private), so a cache keeps the
    anonymous copy apart from them; reads that never look at such a header pass ().
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    response: Response = app.json.response(payload)  # what jsonify does
    # A fresh response holds only Content-Type and Content-Length: each header is new.
    headers = response.headers
    headers.add("ETag", f'"{zlib.crc32(response.get_data()):08x}"')
    config = app.config
    headers.add("Cache-Control", f"public, max-age={config['CACHE_MAX_AGE']}, "
                                 f"stale-while-revalidate={config['CACHE_STALE']}")
    if vary:
        headers.add("Vary", ", ".join(vary))  # Origin is merged in by an after_request hook
    environ = current_request().environ
    if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
        if "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ:
            response.make_conditional(environ)
        else:
            # All make_conditional would do without a precondition (and no Range,
            # Last-Modified or ranges accepted): add the Date.
            headers.add("Date", _http_date_now())
    return response


# (second, its HTTP date): the Date header changes once a second, not per response.
_date_of_second: tuple[int, str] = (0, "")


def _http_date_now() -> str:
    global _date_of_second
    second = int(time.time())
    cached = _date_of_second
    if cached[0] != second:
        cached = _date_of_second = (second, http_date(second))
    return cached[1]


def private(payload: dict[str, Any]) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    response: Response = app.json.response(payload)  # what jsonify does
    headers = response.headers
    headers.add("Cache-Control", "private, no-store")  # a fresh response: neither is set
    headers.add("Vary", "X-Engage-Reader")
    return response


@blp.route("/articles/<eid:article_id>/reactions")
class ArticleReactions(MethodView):
    @documented(
        blp.response(200, schemas.ReactionsSchema),
        blp.alt_response(304, description="Not modified (anonymous reads carry an ETag)."),
        blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token."),
        blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article."),
    )
    def get(self, article_id: str) -> Response:
        """Counts, and the reader's own vote when a reader token is sent."""
        reader = current_reader(required=False)
        result = reactions.read(get_store(), article_id, reader)
        if result is None:
            raise errors.UnknownArticle()
        body = _body(article_id, result)
        return private(body) if reader else cacheable(body)


@blp.route("/articles/<eid:article_id>/reactions/mine")
class MyReaction(MethodView):
    _body_schema = schemas.ReactionInSchema()

    @classmethod
    def _load_body(cls) -> dict[str, Any]:
        """The body as webargs loads it; webargs itself answers anything but a valid
        JSON object, so errors keep their exact statuses and messages."""
        if request.is_json:
            try:
                data: dict[str, Any] = cls._body_schema.load(
                    json.loads(request.get_data(cache=True).decode()))
                return data
            except (ValueError, ValidationError):  # JSON and UTF-8 errors are ValueErrors
                pass
        parsed: dict[str, Any] = blp.ARGUMENTS_PARSER.parse(cls._body_schema, location="json")
        return parsed

    @documented(
        blp.arguments(_body_schema),
        blp.response(200, schemas.ReactionsSchema),
        blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token."),
        blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article."),
        blp.alt_response(429, schema=schemas.ErrorSchema, description="Address throttled."),
        blp.doc(security=[{"readerToken": []}]),
    )
    def put(self, article_id: str) -> Response:
        """Vote, or move the reader's one vote. Repeating the same vote changes nothing."""
        data = self._load_body()
        return self._vote(article_id, data["choice"], data.get("reason"))

    @documented(
        blp.response(200, schemas.ReactionsSchema),
        blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token."),
        blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article."),
        blp.doc(security=[{"readerToken": []}]),
    )
    def delete(self, article_id: str) -> Response:
        """Withdraw the reader's vote."""
        return self._vote(article_id, None, None)

    @staticmethod
    def _vote(article_id: str, choice: str | None, reason: str | None) -> Response:
        reader = current_reader()
        assert reader is not None
        result, changed = reactions.vote(
            get_store(), article_id, reader, current_address_hash(), choice, reason
        )
        metrics.vote_outcome("reaction", changed)  # refusals are counted from their status
        return private(_body(article_id, result))


@blp.route("/reactions")
class BatchReactions(MethodView):
    @blp.arguments(schemas.BatchQuerySchema(), location="query")
    @blp.response(200, schemas.BatchReactionsSchema)
    @blp.alt_response(304, description="Not modified.")
    def get(self, query: dict[str, Any]) -> Response:
        """Counts of up to 100 articles at once (what a page of widgets needs)."""
        ids = list(dict.fromkeys(query["article"]))
        found = reactions.read_many(get_store(), ids)
        body = {
            "articles": {
                aid: {"counts": r.counts, "total": r.total}
                for aid, r in found.items() if r is not None
            },
            "unknown": [aid for aid, r in found.items() if r is None],
        }
        return cacheable(body, vary=())
