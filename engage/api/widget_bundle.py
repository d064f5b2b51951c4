"""What the widget needs on page load, for every article on the page, in two requests.

`GET /widget` is anonymous and cacheable (counts, links, polls); `GET /widget/mine`
is private (the reader's own reaction and poll votes). A page without a stored
reader token makes only the first.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView

from engage import errors, fetching, metrics, schemas
from engage.api import Blueprint
from engage.api.caching import conditional, private, shared
from engage.api.links import public_hrefs
from engage.api.polls import poll_body
from engage.api.spec import READER
from engage.identity import current_reader, spend_page_queue_budget
from engage.store import Store, get_store, polls, reactions, registry, sites, widget

# Named "widget": that is the tag the OpenAPI document lists these reads under.
blp = Blueprint("widget", __name__, description="Batched reads for the embeddable widget.")


# Built once; dumps an article's part of the anonymous bundle once per fetch.
_ARTICLE_SCHEMA = schemas.WidgetArticleSchema()


def _shape(found: widget.WidgetArticle) -> str:
    """An article's part of the anonymous bundle, encoded; the store keeps it for as long
    as it keeps the article, so it is shaped and encoded once per fetch, not per request.
    Its reaction set is in it only when not the bundle's own (the default site's)."""
    part = {
        "counts": found.reactions.counts,
        "total": found.reactions.total,
        "links": public_hrefs(found.links),
        "polls": [poll_body(poll) for poll in found.polls],
    }
    if found.reactions.reaction_set != _default_set():
        part["reaction_set"] = found.reactions.reaction_set
    return json.dumps(_ARTICLE_SCHEMA.dump(part), separators=(",", ":"))


def _default_set() -> dict[str, Any]:
    store = get_store()
    found: dict[str, Any] = sites.listing(store)[store.config["DEFAULT_SITE"]]["reactions"]
    return found


def articles_answer(parts: dict[str, str | None], revalidate: bool = False,
                    **rest: Any) -> Response:
    """`{"articles": {id: part}, "unknown": [id], **rest}`, shared (`@conditional` adds
    the ETag). The parts are JSON already (None: unknown) and only joined, so a read from
    the process's cache encodes just `rest`; IdList's ids need no escaping."""
    found = [aid for aid, part in parts.items() if part is not None]
    known = ",".join([f'"{aid}":{parts[aid]}' for aid in found])
    rest["unknown"] = [aid for aid, part in parts.items() if part is None]
    # `rest` encoded is a non-empty object: its members follow the articles'.
    body = f'{{"articles":{{{known}}},{json.dumps(rest, separators=(",", ":"))[1:]}'
    return current_app.response_class(body, mimetype="application/json",
                                      headers=shared(found, (), revalidate=revalidate))


# Unknown ids of one read queued at most: a page is one article's (docs/registration.md).
QUEUED_PER_READ = 3


def queue_unknown(store: Store, unknown: list[str], url: str | None) -> None:
    """Queue unknown ids for verification from `url` when it is a page of one of a site's
    origins (and the request's Origin, if it has one, that site's too). A page of a
    site's (by its Origin) that names an address off the site's origins is listed among
    the site's unverified pages, keyed by that address, so it cannot hold up the id's
    own verification. Either spends one from the client's page budgets
    (store/budgets.py): past them, the read is answered and nothing is queued or listed.
    Nothing is fetched here: the worker does (engage/pages.py)."""
    if not unknown or not url:
        return
    origin = request.headers.get("Origin")
    listing = sites.listing(store)
    now = store.now()
    for name, site in listing.items():
        if fetching.on_origins(url, site["origins"]):
            if origin and not fetching.on_origins(origin, site["origins"]):
                break
            if _over_budget():
                return
            for article_id in unknown[:QUEUED_PER_READ]:
                queued = registry.enqueue(store, name, article_id, url, now)
                metrics.page_queued("queued" if queued else "waiting")
            return
    owner = next((name for name, site in listing.items()
                  if origin and fetching.on_origins(origin, site["origins"])), None)
    if owner is None:
        metrics.page_queued("off_origin")
    elif not _over_budget():
        metrics.page_queued("off_origin")
        registry.note_failure(store, owner, url, "origin",
                              f"{fetching.origin_of(url) or 'The address'} is not one of the "
                              "site's origins.", now)


def _over_budget() -> bool:
    """Spends one from the client's page budgets; True (and counted) when one is used up.
    The read is answered all the same: only its queueing is refused."""
    try:
        spend_page_queue_budget()
    except errors.RateLimited:
        metrics.page_queued("throttled")
        return True
    return False


@blp.route("/widget")
class WidgetBundle(MethodView):
    @conditional
    @blp.arguments(schemas.WidgetQuerySchema(), location="query")
    @blp.response(200, schemas.WidgetBundleSchema)
    @blp.alt_response(304, description="Not modified.")
    @blp.doc(operationId="getWidgetBundle")
    def get(self, query: dict[str, Any]) -> Response:
        """Counts, related links and polls of up to 100 articles (anonymous view)."""
        ids = list(dict.fromkeys(query["article"]))
        store = get_store()
        default = sites.listing(store)[store.config["DEFAULT_SITE"]]
        # A page is one site's: the first known article's site says its language.
        first = next(iter(sites.sites_of(store, ids)), None)
        parts = widget.read_many(store, ids, _shape)
        unknown = [aid for aid, part in parts.items() if part is None]
        queue_unknown(store, unknown, query.get("url"))
        # Anonymous only (no Vary on a token): the reader's part is /widget/mine. With an
        # unknown article caches ask again each time (an ETag's 304 while unchanged), so
        # the widget's next look shows it as soon as it is registered.
        return articles_answer(parts, revalidate=bool(unknown), **default["reactions"],
                               locale=sites.site_or_default(store, first)["locale"],
                               consent=store.config["READER_CONSENT"])


@blp.route("/widget/mine")
class WidgetMine(MethodView):
    @blp.arguments(schemas.WidgetMineQuerySchema(), location="query")
    @blp.response(200, schemas.WidgetMineSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.doc(operationId="getMyWidgetBundle", security=READER)
    def get(self, query: dict[str, Any]) -> Response:
        """The reader's own reaction and poll votes (with the results they may see)."""
        reader = current_reader(reading=True)
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
