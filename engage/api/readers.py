"""Readers: anonymous, signed tokens for the widget."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from engage import schemas
from engage.api import Blueprint
from engage.identity import mint_for_client

blp = Blueprint("readers", __name__, description="Anonymous reader tokens for the widget.")


@blp.route("/readers")
class Readers(MethodView):
    @blp.response(201, schemas.ReaderSchema)
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Too many tokens minted.")
    @blp.doc(operationId="createReader")
    def post(self) -> dict[str, Any]:
        """Mint a reader token (rate limited per client address and its wider networks)."""
        return {"reader": mint_for_client()}
