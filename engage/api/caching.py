"""Who may cache an API answer, and conditional GET for the shared ones.

An anonymous read is the same for every caller: a CDN or reverse proxy may serve it
for its site's `cache_max_age` seconds and a stale copy for `cache_stale` while it
revalidates (docs/sites.md), and a client that has it gets a 304 without a body. An
answer a reader or staff token shaped is private.

A view returns its data with the headers of one of the two (`shared`, `PRIVATE`);
flask-smorest dumps the data through the declared schema, and `conditional`, above
`@blp.response`, gives a shared answer its ETag and the 304.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, jsonify, request

from engage.identity import READER_HEADER
from engage.store import get_store, sites

F = TypeVar("F", bound=Callable[..., Any])
# What a view returns: its data and the headers of who may cache it.
Answer = tuple[dict[str, Any], dict[str, str]]

PRIVATE = {"Cache-Control": "private, no-store", "Vary": READER_HEADER}


def lifetimes(article_ids: list[str]) -> tuple[int, int]:
    """How long a cache may keep, and then serve stale, an answer about these articles:
    the shortest of their sites' (one site's change must not wait for another's longer
    lifetime); the default site's when none is known (a poll of no article)."""
    store = get_store()
    found = [sites.site_or_default(store, name) for name in sites.sites_of(store, article_ids)]
    found = found or [sites.site_or_default(store, None)]
    return (min(site["cache_max_age"] for site in found),
            min(site["cache_stale"] for site in found))


def shared(article_ids: list[str], vary: tuple[str, ...] = (READER_HEADER,),
           revalidate: bool = False) -> dict[str, str]:
    """The headers of a public answer about these articles (`lifetimes`).

    `vary` names the request headers that would change the answer (a reader token or
    staff token turns it private), so a cache keeps the anonymous copy apart from
    them; reads that never look at such a header pass (). `revalidate` makes caches
    ask again every time (still cheap with the ETag), for an answer about to change.
    """
    max_age, stale = lifetimes(article_ids)
    headers = {"Cache-Control": "public, no-cache" if revalidate else
               f"public, max-age={max_age}, stale-while-revalidate={stale}"}
    if vary:
        headers["Vary"] = ", ".join(vary)  # Origin is merged in by engage's after hook
    return headers


def _make_conditional(response: Response) -> Response:
    response.set_etag(f"{zlib.crc32(response.get_data()):08x}")
    # For GET and HEAD only: If-None-Match (strong, weak or a list of tags) -> 304 with
    # no body, a failed If-Match -> 412. Only a request with one of them can get anything
    # but the answer itself; werkzeug's check also sets Date, which the HTTP server
    # sends on every answer anyway, so the rest skip it.
    if "HTTP_IF_NONE_MATCH" in request.environ or "HTTP_IF_MATCH" in request.environ:
        response.make_conditional(request)
    return response


def conditional(view: F) -> F:
    """Above `@blp.response`: a shared answer gets an ETag of its body, and a client
    that already has it a 304."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        response = view(*args, **kwargs)
        if response.headers.get("Cache-Control", "").startswith("public"):
            _make_conditional(response)
        return response

    return wrapper  # type: ignore[return-value]


def private(payload: Any) -> Response:
    """An answer for this reader only, built from `payload` as it is."""
    response = jsonify(payload)
    response.headers.update(PRIVATE)
    return response
