"""Baseline: one EVALSHA of a minimal vote script per request (the ceiling for a vote).

No token check, no throttle, no events, no stats: the reader header is used as is.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, jsonify, request

VOTE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
end
return redis.call('HGETALL', KEYS[2])
"""

app = Flask(__name__)
client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)
vote = client.register_script(VOTE)


@app.put("/vote")
def cast() -> object:
    choice = (request.get_json(silent=True) or {}).get("choice", "yes")
    flat = vote(keys=["base:{a}:voters", "base:{a}:counts"],
                args=[request.headers["X-Engage-Reader"], choice])
    counts = {k: int(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
    return jsonify(counts=counts, total=sum(counts.values()), mine=choice)
