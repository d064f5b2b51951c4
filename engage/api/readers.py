"""Readers: anonymous, signed tokens for the widget, and the reader's own data."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from engage import errors, schemas
from engage.api import Blueprint
from engage.api.caching import PRIVATE, Answer
from engage.api.spec import READER
from engage.identity import (
    current_reader,
    mint_for_client,
    reader_token,
    renew_reader,
    spend_reader_data_budget,
)
from engage.store import get_store, readers

blp = Blueprint("readers", __name__, description="Anonymous reader tokens for the widget.")


@blp.route("/readers")
class Readers(MethodView):
    @blp.response(201, schemas.ReaderSchema)
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Too many tokens minted.")
    @blp.doc(operationId="createReader")
    def post(self) -> dict[str, Any]:
        """Mint a reader token (rate limited per client address and its wider networks)."""
        return {"reader": mint_for_client()}


@blp.route("/readers/renew")
class RenewReader(MethodView):
    @blp.response(201, schemas.ReaderSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema,
                      description="Invalid, renewed, erased or too old a token.")
    @blp.doc(operationId="renewReader", security=READER)
    def post(self) -> dict[str, Any]:
        """A new token for the same reader (votes kept); the one sent is refused from now
        on. Takes a token up to READER_RETENTION_DAYS old."""
        read = reader_token(renewing=True)
        if read is None:
            raise errors.InvalidReader("Send a reader token in the X-Engage-Reader header.")
        return {"reader": renew_reader(read)}


@blp.route("/readers/me/data")
class MyData(MethodView):
    @blp.response(200, schemas.ReaderDataSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Asked too often.")
    @blp.doc(operationId="exportMyData", security=READER)
    def get(self) -> Answer:
        """Everything engage holds about the reader, with times (docs/privacy.md)."""
        reader = current_reader()
        assert reader is not None
        spend_reader_data_budget()
        return readers.export(get_store(), reader), PRIVATE

    @blp.response(200, schemas.ErasedSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Asked too often.")
    @blp.doc(operationId="eraseMyData", security=READER)
    def delete(self) -> Answer:
        """Withdraw the reader's votes and answers, remove every trace of the reader, and
        refuse the token from now on."""
        reader = current_reader()
        assert reader is not None
        spend_reader_data_budget()
        return {"erased": readers.erase(get_store(), reader)}, PRIVATE
