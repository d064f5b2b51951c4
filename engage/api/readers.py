"""Readers: anonymous, signed tokens for the widget."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from engage import schemas
from engage.api import Blueprint
from engage.extensions import limiter
from engage.identity import get_identity

blp = Blueprint("readers", __name__, description="Anonymous reader tokens for the widget.")


@blp.route("/readers")
class Readers(MethodView):
    decorators = [limiter.limit(lambda: _mint_limit(), methods=["POST"])]

    @blp.response(201, schemas.ReaderSchema)
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Too many tokens minted.")
    @blp.doc(operationId="createReader")
    def post(self) -> dict[str, Any]:
        """Mint a reader token (rate limited per client address)."""
        return {"reader": get_identity().mint_reader()}


def _mint_limit() -> str:
    from flask import current_app

    return str(current_app.config["READER_MINT_LIMIT"])
