"""Baseline: the cheapest Flask view there is, a constant JSON body (the ceiling for any view)."""

from __future__ import annotations

from flask import Flask, jsonify

app = Flask(__name__)
BODY = {"article": "bench-read", "counts": {"yes": 12, "no": 3}, "total": 15, "mine": None}


@app.get("/")
def constant() -> object:
    return jsonify(BODY)
