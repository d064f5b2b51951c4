"""Viral-article sharding: see whether an article's votes are sharded, shard one.

Sharding spreads one article's votes over several Redis Cluster slots (store/shards.py,
docs/scaling.md). It is one-way, so turning it on is an admin's call.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from engage import errors, schemas
from engage.identity import require_role
from engage.store import get_store, shards

blp = Blueprint("sharding", __name__, description="Counter shards for viral articles.")


@blp.route("/articles/<eid:article_id>/sharding")
class ArticleSharding(MethodView):
    @blp.response(200, schemas.ShardingSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No or invalid token.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.doc(security=[{"editorToken": []}])
    @require_role("editor")
    def get(self, article_id: str) -> dict[str, Any]:
        """How many counter shards the article's votes are spread over (0: none)."""
        count = shards.count(get_store(), article_id)
        if count is None:
            raise errors.UnknownArticle()
        return {"article": article_id, "shards": count}

    @blp.arguments(schemas.ShardingInSchema)
    @blp.response(200, schemas.ShardingSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No or invalid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an admin.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.doc(security=[{"editorToken": []}])
    @require_role("admin")
    def put(self, data: dict[str, Any], article_id: str) -> dict[str, Any]:
        """Spread the article's votes over counter shards (one-way; idempotent).

        Votes pause for the moment it takes to copy the article's voters to their
        shards; an article already sharded keeps its count.
        """
        count = shards.enable(get_store(), article_id, data.get("shards"))
        return {"article": article_id, "shards": count}
