"""Articles: editors register them; everything else hangs from them."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from engage import errors, schemas
from engage.api import Blueprint
from engage.api.spec import EDITOR
from engage.identity import check_article_site, require_role
from engage.store import articles, get_store
from engage.store.reactions import normalize_counts

blp = Blueprint("articles", __name__, description="Articles that readers react to.")


@blp.route("/articles/<eid:article_id>")
class Article(MethodView):
    @blp.response(200, schemas.ArticleSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.doc(operationId="getArticle")
    def get(self, article_id: str) -> dict[str, Any]:
        """An article with its reaction counts."""
        store = get_store()
        article, raw_counts = articles.get_with_counts(store, article_id)
        if article is None:
            raise errors.UnknownArticle()
        counts = normalize_counts(article["reaction_set"]["choices"], raw_counts)
        article["reactions"] = {"counts": counts, "total": sum(counts.values())}
        return article

    @blp.arguments(schemas.ArticleInSchema())
    @blp.response(200, schemas.ArticleSchema)
    @blp.alt_response(201, schema=schemas.ArticleSchema, description="Created.")
    @blp.doc(operationId="putArticle", security=EDITOR)
    @require_role("editor")
    def put(self, data: dict[str, Any], article_id: str) -> tuple[dict[str, Any], int]:
        """Register or update an article (editor)."""
        check_article_site(article_id, data.get("site"), data.get("section"))
        article, created = articles.upsert(get_store(), article_id, data)
        return article, 201 if created else 200
