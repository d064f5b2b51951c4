"""`GET /metrics`: Prometheus text for every worker of this server."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from engage import metrics
from engage.store import get_store, health

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    store = get_store()
    body = metrics.render(redis_up=lambda: health.redis_answers(store))
    response = Response(body, content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
