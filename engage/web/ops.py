"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from engage.errors import error_response
from engage.store import get_store, health

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """The process runs; says nothing about Redis, so a Redis outage does not kill pods."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    if health.redis_answers(get_store()):
        return jsonify(status="ready")
    return error_response(503, "storage_unavailable", "Redis does not answer.",
                          headers={"Retry-After": str(current_app.config["RETRY_AFTER"])})

