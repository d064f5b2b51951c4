"""Readers: anonymous, signed tokens for the widget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from flask.views import MethodView
from limits import parse_many

from engage import schemas
from engage.api import Blueprint
from engage.extensions import limiter
from engage.identity import WIDER_NETWORKS, current_network_hashes, get_identity
from engage.store.budgets import network_setting

blp = Blueprint("readers", __name__, description="Anonymous reader tokens for the widget.")

MINT_LIMIT = "READER_MINT_LIMIT"


def _mint_limit() -> str:
    return str(current_app.config[MINT_LIMIT])


def _rate(value: str) -> float:
    """Tokens a second the tightest of a Flask-Limiter limit string's limits allows."""
    return min(item.amount / item.get_expiry() for item in parse_many(value))


def _network_mint_limit(name: str) -> Callable[[], str]:
    """The mint limit of the wider network `name`, never below the address group's: a
    network holds the group, so a smaller limit would quietly lower the group's."""
    def limit() -> str:
        wider = str(current_app.config[network_setting(MINT_LIMIT, name)])
        return max(_mint_limit(), wider, key=_rate)
    return limit


def _network_key(name: str) -> Callable[[], str]:
    def key() -> str:
        # Flask-Limiter stores its key in Redis: the network's hash, never the network.
        return "addr:" + current_network_hashes()[name]
    return key


def _not_in_network(name: str) -> Callable[[], bool]:
    def exempt() -> bool:
        return name not in current_network_hashes()  # IPv4 has no /56, IPv6 no /24
    return exempt


# The address group's limit (the limiter's key is its hash), then each wider network's.
MINT_LIMITS: list[Callable[..., Any]] = [
    limiter.limit(_mint_limit, methods=["POST"]),
    *(limiter.limit(_network_mint_limit(name), key_func=_network_key(name),
                    exempt_when=_not_in_network(name), methods=["POST"])
      for name, _, _ in WIDER_NETWORKS),
]


@blp.route("/readers")
class Readers(MethodView):
    decorators = MINT_LIMITS

    @blp.response(201, schemas.ReaderSchema)
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Too many tokens minted.")
    @blp.doc(operationId="createReader")
    def post(self) -> dict[str, Any]:
        """Mint a reader token (rate limited per client address and its wider networks)."""
        return {"reader": get_identity().mint_reader()}
