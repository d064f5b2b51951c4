"""CORS: a site's publisher origins may call the API for that site's articles.

engage answers CORS itself rather than through flask-cors, whose allowlist is fixed when
the app starts: sites, and their origins, change while it runs (store/sites.py). Exact
origins only, never `null`, never credentials.
"""

from __future__ import annotations

from flask import Response, request

from engage import schemas
from engage.store import UNAVAILABLE, get_store, sites

EXPOSE_HEADERS = "ETag, Retry-After, X-Request-ID"
ALLOW_HEADERS = "Content-Type, X-Engage-Reader, If-None-Match, X-Request-ID"
ALLOW_METHODS = "GET, HEAD, POST, OPTIONS, PUT, PATCH, DELETE"
PREFLIGHT_MAX_AGE = "600"


def answer_cors(response: Response) -> None:
    """Every API answer varies by Origin (allowed or not), in one merged Vary header: a
    CDN must never hand one origin's answer, CORS headers or not, to another. An allowed
    origin is told so, and a preflight what it may send."""
    if not request.path.startswith("/api/"):
        return
    values = [v.strip() for line in response.headers.getlist("Vary") for v in line.split(",")]
    response.headers["Vary"] = ", ".join(dict.fromkeys(v for v in [*values, "Origin"] if v))
    origin = request.headers.get("Origin")
    if not origin or not request.path.startswith("/api/v1/") or not _allowed(origin):
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    else:
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def _allowed(origin: str) -> bool:
    """The origin is a site's, and every article the request names (in its path, or as
    `article` parameters) is one of that site's or unknown. A request naming no article
    (a reader token, a poll) is allowed to every site's origins."""
    store = get_store()
    try:
        owners = {name for name, site in sites.listing(store).items()
                  if origin in site["origins"]}
        if not owners:
            return False
        named = (request.view_args or {}).get("article_id")
        ids = [named] if named else [a for a in request.args.getlist("article")[:100]
                                     if schemas.ID_RE.fullmatch(a)]
        return all(site is None or site in owners
                   for site in sites.of_articles(store, ids).values())
    except UNAVAILABLE:
        return False  # the answer is the outage's 503 already
