"""The widget script, the demo article page and the counting redirect of related links."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request

from engage import errors, metrics, schemas, seeds
from engage.identity import current_address_hash, current_network_hashes
from engage.store import articles, get_store, links, reactions
from engage.web import agents

bp = Blueprint("embed", __name__)

WIDGET_FILE = Path(__file__).resolve().parent / "static" / "widget.js"
# A versioned URL never changes content, so it may be cached for a year.
VERSIONED_CACHE = "public, max-age=31536000, immutable"
# The plain URL is what publishers embed: cached briefly, then revalidated by ETag.
PLAIN_CACHE = "public, max-age=300, stale-while-revalidate=86400"

MAX_ALSO = 5


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    version: str


def widget_asset() -> Asset:
    """The script, its gzip and its content hash; reread only when the file changes."""
    return _read_asset(WIDGET_FILE.stat().st_mtime)


@lru_cache(maxsize=1)
def _read_asset(mtime: float) -> Asset:
    body = WIDGET_FILE.read_bytes()
    return Asset(
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        version=hashlib.sha256(body).hexdigest()[:12],
    )


@bp.get("/widget.js")
def widget_js() -> Response:
    """The embeddable script; `?v=<version>` is the long-cached form of the same file."""
    asset = widget_asset()
    use_gzip = "gzip" in request.accept_encodings
    response = Response(asset.gzipped if use_gzip else asset.body,
                        mimetype="text/javascript")
    if use_gzip:
        response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    response.set_etag(asset.version + ("-gz" if use_gzip else ""))
    versioned = request.args.get("v") == asset.version
    response.headers["Cache-Control"] = VERSIONED_CACHE if versioned else PLAIN_CACHE
    # Publisher pages that isolate themselves (COEP) may still load it.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers["X-Engage-Widget-Version"] = asset.version
    response.make_conditional(request)
    return response


def _date(value: str | None) -> str:
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return ""
    return f"{when.day} {when:%B %Y}"


@bp.get("/demo/<eid:article_id>")
def demo(article_id: str) -> Any:
    """A sample article page embedding the widget exactly as a publisher would."""
    config = current_app.config
    if not config.get("DEMO"):
        abort(404)
    store = get_store()
    article = articles.get(store, article_id)
    if article is None:
        return render_template("demo.html", article=None), 404
    seed = seeds.demo_article(config["SEEDS_DIR"], article_id) or {}
    also_ids = [
        aid for aid in dict.fromkeys(request.args.getlist("also"))
        if schemas.ID_RE.fullmatch(aid) and aid != article_id
    ][:MAX_ALSO]
    also = list(articles.get_many(store, also_ids).values()) if also_ids else []
    return render_template(
        "demo.html",
        article=article,
        date=_date(article.get("published_at")),
        summary=seed.get("summary"),
        paragraphs=seed.get("body") or [],
        also=also,
        reactions=reactions.read(store, article_id),  # the form shown without JavaScript
    )


@bp.route("/r/<path:link_id>", methods=["GET", "HEAD"], merge_slashes=False)
def redirect_link(link_id: str) -> Response:
    """302 to the stored URL of a link, counting a reader's click.

    The target comes from the store only; the request supplies nothing but the id.
    Every request that finds the link is redirected; only a reader's first click from
    an address group in the click window counts (agents.why_not_counted says which
    requests are not readers').
    """
    if not schemas.ID_RE.fullmatch(link_id):
        raise errors.UnknownLink()
    refused = agents.why_not_counted(request.method, request.headers)
    found = links.click(get_store(), link_id, current_address_hash(), refused,
                        networks=current_network_hashes())
    if found.refused is None:
        metrics.link_event("click")
    else:
        metrics.link_refused("click_" + found.refused)
    if not schemas.is_usable_url(found.url):
        # Stored before URLs were checked this strictly: the server could not send it.
        raise errors.NotFound("This link's address is not valid.")
    response = Response(status=302)
    response.headers["Location"] = found.url
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response
