"""engage's app-wide layers around views that do (almost) nothing: the floor of the stack.

    python bench/engage_layers.py --bind 127.0.0.1:8001 --workers 2

Serves `create_app()` (request id and log line, prometheus multiprocess metrics, CORS,
Flask-Limiter, security headers, flask-smorest) in `BufferedWSGI`, plus one bench-only
blueprint, under granian with the settings of `engage serve` (`engage.server`):

- `GET /api/v1/bench/constant`: a constant body through `@blp.response` and a small
  schema, no Redis;
- `PUT /api/v1/bench/vote`: the body through engage's reaction schema, then one EVALSHA
  of the bare baseline's minimal vote script (`baselines/flask_evalsha.py`) on engage's
  own Redis client; the reader header is used as is (no token check, no throttle).

bench/run.py sets it beside the bare Flask views: the ratio says how close any engage
view can come to them, whatever the view does. The blueprint lives here only: engage
itself never has these routes. Settings come from the environment (`ENGAGE_*`), as for
`engage serve`.
"""

from __future__ import annotations

import argparse
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import Schema, fields

from engage import create_app, schemas
from engage.api import API_PREFIX, Blueprint
from engage.server import BODY_TIMEOUT, THREADS, BufferedWSGI, MetricsDirectory, run_granian
from engage.store import get_store

# The same script as the bare EVALSHA baseline.
VOTE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
end
return redis.call('HGETALL', KEYS[2])
"""
BODY = {"article": "bench-read", "counts": {"yes": 12, "no": 3}, "total": 15, "mine": None}


class ConstantSchema(Schema):
    article = fields.String(required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    total = fields.Integer(required=True)
    mine = fields.String(allow_none=True, required=True)


# Beside the bare view's keys (base:{a}:...), so bench/run.py counts each one's votes.
VOTE_KEYS = ["layers:{a}:voters", "layers:{a}:counts"]


def bench_blueprint() -> Blueprint:
    blp = Blueprint("bench_layers", __name__, description="Benchmark only.")
    scripts: dict[str, Any] = {}

    @blp.route("/bench/constant")
    class Constant(MethodView):
        @blp.response(200, ConstantSchema)
        def get(self) -> dict[str, Any]:
            return BODY

    @blp.route("/bench/vote")
    class Vote(MethodView):
        @blp.arguments(schemas.ReactionInSchema)
        @blp.response(200, ConstantSchema)
        def put(self, data: dict[str, Any]) -> dict[str, Any]:
            if "vote" not in scripts:
                scripts["vote"] = get_store().redis.register_script(VOTE)
            flat = scripts["vote"](keys=VOTE_KEYS,
                                   args=[request.headers["X-Engage-Reader"], data["choice"]])
            counts = {k: int(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
            return {"article": "bench-vote", "counts": counts, "total": sum(counts.values()),
                    "mine": data["choice"]}

    return blp


def granian_app() -> Any:
    """What each granian worker serves: as engage.server.granian_app, plus the bench
    blueprint, registered through engage's own flask-smorest Api before any request."""
    app = create_app()
    app.extensions["engage.api"].register_blueprint(bench_blueprint(), url_prefix=API_PREFIX)
    return BufferedWSGI(app, BODY_TIMEOUT, int(app.config["MAX_CONTENT_LENGTH"]), THREADS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1:8001")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    # As `engage serve`: the metrics directory before any worker.
    metrics_dir = MetricsDirectory.open()
    try:
        run_granian(args.bind, args.workers, target="engage_layers:granian_app")
    finally:
        metrics_dir.close()


if __name__ == "__main__":
    main()
