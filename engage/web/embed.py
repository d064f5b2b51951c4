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
from engage.identity import current_address_hash, current_network_hashes, reader_token
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


def shipped(source: bytes) -> bytes:
    """The script as readers download it: without indentation and whole-line comments,
    which explain the source, not the page (the widget's gzip budget, 6 KB, is theirs)."""
    lines = (line.strip() for line in source.splitlines())
    return b"\n".join(line for line in lines if line and not line.startswith(b"//")) + b"\n"


@lru_cache(maxsize=1)
def _read_asset(mtime: float) -> Asset:
    body = shipped(WIDGET_FILE.read_bytes())
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


# The "Your data" page's words, in the widget's languages (widget.js `T`).
YOUR_DATA = {
    "en": {"title": "Your data", "intro": "What this site's reader feedback holds about "
           "you: your reactions, reasons and poll answers, with times.",
           "download": "Download my data", "erase": "Erase my data",
           "confirm": "Withdraw your votes and erase everything held about you?",
           "saved": "Downloaded.", "erased": "Erased: your votes are withdrawn.",
           "none": "Nothing is held about you in this browser.",
           "failed": "That did not work. Please try again later."},
    "ko": {"title": "내 데이터", "intro": "이 사이트의 독자 의견 기능이 보관하는 내 정보: "
           "반응, 이유, 투표 응답과 그 시각.",
           "download": "내 데이터 내려받기", "erase": "내 데이터 삭제",
           "confirm": "투표를 취소하고 보관된 모든 정보를 삭제할까요?",
           "saved": "내려받았습니다.", "erased": "삭제했습니다. 투표가 취소되었습니다.",
           "none": "이 브라우저에 대해 보관된 정보가 없습니다.",
           "failed": "처리하지 못했습니다. 잠시 후 다시 시도해 주세요."},
    "zh": {"title": "我的数据",
           "intro": "本站读者反馈功能保存的关于您的信息：您的反应、原因和投票，以及时间。",
           "download": "下载我的数据", "erase": "删除我的数据",
           "confirm": "撤回您的投票并删除关于您的所有信息？",
           "saved": "已下载。", "erased": "已删除，您的投票已撤回。",
           "none": "此浏览器没有保存关于您的信息。", "failed": "操作失败，请稍后再试。"},
    "es": {"title": "Tus datos", "intro": "Lo que la opinión de lectores de este sitio "
           "guarda sobre ti: reacciones, motivos y respuestas a encuestas, con sus horas.",
           "download": "Descargar mis datos", "erase": "Borrar mis datos",
           "confirm": "¿Retirar tus votos y borrar todo lo que se guarda sobre ti?",
           "saved": "Descargado.", "erased": "Borrado: tus votos se han retirado.",
           "none": "No se guarda nada sobre ti en este navegador.",
           "failed": "No ha funcionado. Inténtalo más tarde."},
}


@bp.get("/your-data")
def your_data() -> str:
    """The widget's "Your data" page: the reader's token arrives in the fragment (never
    sent to a server), and the page's script exports or erases with it."""
    lang = request.args.get("lang", "")
    lang = lang if lang in YOUR_DATA else current_app.config["LOCALE"]
    return render_template("your_data.html", lang=lang,
                           words=YOUR_DATA.get(lang, YOUR_DATA["en"]))


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


@bp.route("/r/<path:link_id>", methods=["GET", "HEAD", "POST"], merge_slashes=False)
def redirect_link(link_id: str) -> Response:
    """302 (303 to a POST) to the stored URL of a link, counting a reader's click.

    The target comes from the store only; the request supplies nothing but the id, and
    in a POST (the widget's, for a reader who has acted) the reader token as `reader`,
    never in the address. Every request that finds the link is redirected; only a
    reader's first click from an address group in the click window counts
    (agents.why_not_counted says which requests are not readers').
    """
    if not schemas.ID_RE.fullmatch(link_id):
        raise errors.UnknownLink()
    refused = agents.why_not_counted(request.method, request.headers)
    try:
        # Checked as a vote is (no round trip): a credit an erased token slips in within
        # the second is dropped by the aggregator, which files credits (store/readers.py).
        read = reader_token(token=request.form.get("reader") or None, voting=True)
    except errors.InvalidReader:
        read = None  # expired or erased: the click counts, credited to no one
    found = links.click(get_store(), link_id, current_address_hash(), refused,
                        networks=current_network_hashes(), reader=read[1] if read else None)
    if found.refused is None:
        metrics.link_event("click")
    else:
        metrics.link_refused("click_" + found.refused)
    if not schemas.is_usable_url(found.url):
        # Stored before URLs were checked this strictly: the server could not send it.
        raise errors.NotFound("This link's address is not valid.")
    response = Response(status=303 if request.method == "POST" else 302)
    response.headers["Location"] = found.url
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response
