"""Who may cache an API answer, and conditional GET for the shared ones.

An anonymous read is the same for every caller: a CDN or reverse proxy may serve it
for CACHE_MAX_AGE seconds and a stale copy while it revalidates, and a client that has
it gets a 304 without a body. An answer a reader or staff token shaped is private.
"""

from __future__ import annotations

import zlib
from typing import Any

from flask import Response, current_app, jsonify, request


def cacheable(payload: Any, vary: tuple[str, ...] = ("X-Engage-Reader",),
              revalidate: bool = False) -> Response:
    """A public answer with an ETag; 304 when the client has it.

    `vary` names the request headers that would change the answer (a reader token or
    staff token turns it private), so a cache keeps the anonymous copy apart from
    them; reads that never look at such a header pass (). `revalidate` makes caches
    ask again every time (still cheap with the ETag), for an answer about to change.
    """
    response = jsonify(payload)
    response.set_etag(f"{zlib.crc32(response.get_data()):08x}")
    config = current_app.config
    response.headers["Cache-Control"] = (
        "public, no-cache" if revalidate else
        f"public, max-age={config['CACHE_MAX_AGE']}, "
        f"stale-while-revalidate={config['CACHE_STALE']}"
    )
    if vary:
        response.headers["Vary"] = ", ".join(vary)  # Origin is merged in by an after_request hook
    # For GET and HEAD only: If-None-Match (strong, weak or a list of tags) -> 304 with
    # no body, a failed If-Match -> 412, and the Date.
    response.make_conditional(request)
    return response


def private(payload: Any) -> Response:
    """An answer for this reader only: no cache may keep it."""
    response = jsonify(payload)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Vary"] = "X-Engage-Reader"
    return response
