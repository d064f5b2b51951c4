"""What the widget needs on page load, for every article on the page, in two requests.

`GET /widget` is anonymous and cacheable (counts, links, polls); `GET /widget/mine`
is private (the reader's own reaction and poll votes). A page without a stored
reader token makes only the first.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask.views import MethodView

from engage import errors, schemas
from engage.api import Blueprint
from engage.api.caching import cacheable, private
from engage.api.links import public_hrefs
from engage.api.polls import poll_body
from engage.api.spec import READER
from engage.identity import current_reader
from engage.store import get_store, links, polls, reactions

# Named "widget": that is the tag the OpenAPI document lists these reads under.
blp = Blueprint("widget", __name__, description="Batched reads for the embeddable widget.")


@blp.route("/widget")
class WidgetBundle(MethodView):
    @blp.arguments(schemas.BatchQuerySchema(), location="query")
    @blp.response(200, schemas.WidgetBundleSchema)
    @blp.alt_response(304, description="Not modified.")
    @blp.doc(operationId="getWidgetBundle")
    def get(self, query: dict[str, Any]) -> Response:
        """Counts, related links and polls of up to 100 articles (anonymous view)."""
        store = get_store()
        ids = list(dict.fromkeys(query["article"]))
        found = reactions.read_many(store, ids)
        known = [aid for aid in ids if found[aid] is not None]
        boxes = links.for_articles(store, known) if known else {}
        poll_views = polls.for_articles(store, known) if known else {}
        config = current_app.config
        body: dict[str, Any] = {
            "choices": list(config["CHOICES"]),
            "reason_choice": config["REASON_CHOICE"] or None,
            "reasons": list(config["REASONS"]),
            "locale": config["LOCALE"],
            "articles": {},
            "unknown": [aid for aid in ids if found[aid] is None],
        }
        for aid in known:
            result = found[aid]
            assert result is not None
            body["articles"][aid] = {
                "counts": result.counts,
                "total": result.total,
                "links": public_hrefs(boxes.get(aid, [])),
                "polls": [poll_body(poll) for poll in poll_views.get(aid, [])],
            }
        return cacheable(body, vary=())  # anonymous only: the reader's part is /widget/mine


@blp.route("/widget/mine")
class WidgetMine(MethodView):
    @blp.arguments(schemas.WidgetMineQuerySchema(), location="query")
    @blp.response(200, schemas.WidgetMineSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.doc(operationId="getMyWidgetBundle", security=READER)
    def get(self, query: dict[str, Any]) -> Response:
        """The reader's own reaction and poll votes (with the results they may see)."""
        reader = current_reader()
        if reader is None:  # pragma: no cover - current_reader() raises instead
            raise errors.InvalidReader()
        store = get_store()
        ids = list(dict.fromkeys(query["article"]))
        mine: dict[str, Any] = {}
        known = []
        for aid, result in reactions.read_many(store, ids, reader).items():
            if result is not None:
                known.append(aid)
                mine[aid] = {
                    "counts": result.counts, "total": result.total,
                    "mine": result.mine, "reason": result.reason, "polls": [],
                }
        for aid, views in (polls.for_articles(store, known, reader) if known else {}).items():
            mine[aid]["polls"] = [poll_body(poll) for poll in views]
        return private({"articles": mine})
