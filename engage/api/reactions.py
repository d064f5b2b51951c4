"""Reactions: "Do you like this article?"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, current_app, url_for
from flask.views import MethodView

from engage import errors, metrics, schemas
from engage.api import Blueprint
from engage.api.caching import PRIVATE, Answer, conditional, shared
from engage.api.spec import EDITOR, READER, READER_OPTIONAL
from engage.api.widget_bundle import articles_answer
from engage.identity import (
    current_address_hash,
    current_network_hashes,
    current_reader,
    get_identity,
    require_role,
)
from engage.store import articles, get_store, reactions, stats
from engage.store.reactions import Reactions

blp = Blueprint("reactions", __name__, description="Reader reactions on articles.")


def _body(article_id: str, result: Reactions) -> dict[str, Any]:
    """What ReactionsSchema dumps."""
    body: dict[str, Any] = {
        "article": article_id,
        "counts": result.counts,
        "total": result.total,
        "mine": result.mine,
    }
    if result.reason:
        body["reason"] = result.reason
    return body



@blp.route("/articles/<eid:article_id>/reactions")
class ArticleReactions(MethodView):
    @conditional
    @blp.response(200, schemas.ReactionsSchema)
    @blp.alt_response(304, description="Not modified (anonymous reads carry an ETag).")
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.doc(operationId="getReactions", security=READER_OPTIONAL)
    def get(self, article_id: str) -> Answer | Response:
        """Counts, and the reader's own vote when a reader token is sent."""
        reader = current_reader(required=False, reading=True)
        result = reactions.read(get_store(), article_id, reader)
        if result is None:
            raise errors.UnknownArticle()
        if reader:
            return _body(article_id, result), PRIVATE
        return _anonymous(article_id, result)


def _anonymous(article_id: str, result: Reactions) -> Response:
    """ReactionsSchema's body of anonymous counts, joined from the encoding the process
    keeps with them, as the batch read and the widget bundle serve theirs: a read from
    the cache encodes nothing. Ids need no escaping (IdConverter)."""
    counts = result.counts_json[1:-1]  # "counts":{...},"total":n
    body = f'{{"article":"{article_id}",{counts},"mine":null}}'
    return current_app.response_class(body, mimetype="application/json",
                                      headers=shared([article_id]))


@blp.route("/articles/<eid:article_id>/reactions/mine")
class MyReaction(MethodView):
    @blp.arguments(schemas.ReactionInSchema())
    @blp.response(200, schemas.ReactionsSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Address throttled.")
    @blp.doc(operationId="putMyReaction", security=READER)
    def put(self, data: dict[str, Any], article_id: str) -> Answer:
        """Vote, or move the reader's one vote. Repeating the same vote changes nothing."""
        return self._vote(article_id, data["choice"], data.get("reason"))

    @blp.response(200, schemas.ReactionsSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.doc(operationId="deleteMyReaction", security=READER)
    def delete(self, article_id: str) -> Answer:
        """Withdraw the reader's vote."""
        return self._vote(article_id, None, None)

    @staticmethod
    def _vote(article_id: str, choice: str | None, reason: str | None) -> Answer:
        reader = current_reader(voting=True)
        assert reader is not None
        result, changed = reactions.vote(
            get_store(), article_id, reader, current_address_hash(), choice, reason,
            networks=current_network_hashes(),
        )
        metrics.vote_outcome("reaction", changed)  # refusals are counted from their status
        return _body(article_id, result), PRIVATE


def email_vote_links(article_id: str, query: dict[str, Any]) -> dict[str, Any]:
    """What EmailLinksSchema dumps for EmailLinksQuerySchema's `query` (the API's answer
    and the dashboard's)."""
    store = get_store()
    article = articles.get(store, article_id)
    if article is None:
        raise errors.UnknownArticle()
    days = query.get("days") or current_app.config["EMAIL_LINK_DAYS"]
    expires = (store.now() + timedelta(days=days)).replace(microsecond=0)
    token = get_identity().sign_vote_link(article_id, int(expires.timestamp()))
    # Links leave engage in an email, so they need PUBLIC_URL to be absolute; never the
    # request's Host, which anyone may send.
    root = (current_app.config["PUBLIC_URL"] or "").rstrip("/")
    tag = query["merge_tag"]
    return {
        "article": article_id,
        "expires_at": stats.iso(expires),
        "merge_tag": tag,
        "links": [{"choice": choice,
                   "url": root + url_for("ballot.email_vote", token=token, choice=choice)
                   + "?r=" + tag}
                  for choice in article["reaction_set"]["choices"]],
    }


@blp.route("/articles/<eid:article_id>/email-links")
class EmailVoteLinks(MethodView):
    @blp.arguments(schemas.EmailLinksQuerySchema(), location="query")
    @blp.response(200, schemas.EmailLinksSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.doc(operationId="getEmailVoteLinks", security=EDITOR)
    @require_role("editor")
    def get(self, query: dict[str, Any], article_id: str) -> Answer:
        """Per-choice vote links for a newsletter (editor): signed, expiring, with the
        mailing tool's merge tag where each recipient's id goes. Opening one shows a
        confirmation page; only its button counts (docs/newsletters.md)."""
        return email_vote_links(article_id, query), PRIVATE


@blp.route("/reactions")
class BatchReactions(MethodView):
    @conditional
    @blp.arguments(schemas.BatchQuerySchema(), location="query")
    @blp.response(200, schemas.BatchReactionsSchema)
    @blp.alt_response(304, description="Not modified.")
    @blp.doc(operationId="getReactionsBatch")
    def get(self, query: dict[str, Any]) -> Response:
        """Counts of up to 100 articles at once (what a page of widgets needs)."""
        found = reactions.read_many(get_store(), list(dict.fromkeys(query["article"])))
        return articles_answer({aid: None if r is None else r.counts_json
                                for aid, r in found.items()})
