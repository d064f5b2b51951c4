"""Related links ("Policy Link"): editors curate them, readers see and click them."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from engage import errors, metrics, schemas
from engage.api import Blueprint
from engage.api.spec import EDITOR, READER_OPTIONAL
from engage.identity import current_address_hash, current_reader, require_role
from engage.store import articles, budgets, get_store, links

blp = Blueprint("links", __name__, description="Related links and their click-through.")


def public_hrefs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Redirect paths under ENGAGE_PUBLIC_URL when it is set, else left relative (the
    widget resolves them against its API origin). Never the request's Host: anyone may
    send one, and a shared cache would hand their answer to every reader."""
    root = (current_app.config["PUBLIC_URL"] or "").rstrip("/")
    if not root:
        return items
    return [
        {**item, "href": root + item["href"]} if item["href"].startswith("/") else item
        for item in items
    ]


@blp.route("/articles/<eid:article_id>/links")
class ArticleLinks(MethodView):
    @blp.response(200, schemas.LinksSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.doc(operationId="getLinks")
    def get(self, article_id: str) -> dict[str, Any]:
        """Curated links, filled up with related articles of the same section."""
        store = get_store()
        if articles.get(store, article_id) is None:
            raise errors.UnknownArticle()
        return {"links": public_hrefs(links.for_articles(store, [article_id])[article_id])}

    @blp.arguments(schemas.LinkInSchema(many=True))
    @blp.response(200, schemas.LinksSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.alt_response(422, schema=schemas.ErrorSchema, description="Invalid links.")
    @blp.doc(operationId="putLinks", security=EDITOR)
    @require_role("editor")
    def put(self, items: list[dict[str, str]], article_id: str) -> dict[str, Any]:
        """Replace the curated links (up to 20, http/https only; editor)."""
        return {"links": public_hrefs(links.set_links(get_store(), article_id, items))}


@blp.route("/articles/<eid:article_id>/links/impressions")
class LinkImpressions(MethodView):
    @blp.arguments(schemas.ImpressionsInSchema())
    @blp.response(200, schemas.ImpressionsSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Too many reports.")
    @blp.doc(operationId="recordLinkImpressions", security=READER_OPTIONAL)
    def post(self, data: dict[str, Any], article_id: str) -> dict[str, Any]:
        """Links a reader actually saw (half visible for a second), once per page view."""
        # Optional, but a forged one is still refused.
        current_reader(required=False, reading=True)
        # Anonymous: the address's own budget keeps one client from flooding the
        # endpoint; the store counts at most IMPRESSION_CAP per link per address group.
        store, address = get_store(), current_address_hash()
        budgets.spend(store, "imp", address, budgets.NO_NETWORKS,
                      str(budgets.IMPRESSION_REPORTS), budgets.MINUTE)
        counted, over_cap = links.impressions(store, article_id, address, data["links"])
        for _ in range(counted):
            metrics.link_event("impression")
        metrics.link_refused("impression_over_cap", over_cap)
        return {"counted": counted}
