"""Votes from where the widget cannot run: a newsletter's vote links, the widget's form
on a page without JavaScript, and an AMP page's form (docs/newsletters.md, docs/widget.md).

Each counts through `reactions.vote`, the widget's one script, with the same
one-vote-per-reader key and address budgets, and records its channel. A request
`agents.why_not_counted` refuses (scanners, previewers, prefetches, HEAD) never counts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from engage import errors, metrics, schemas
from engage.identity import (
    current_address_hash,
    current_network_hashes,
    get_identity,
    mint_for_client,
    reader_token,
    renew_reader,
)
from engage.store import articles, get_store, reactions, sites
from engage.web import agents

bp = Blueprint("ballot", __name__)

# A reader without JavaScript keeps its reader token here (HttpOnly: no script reads it).
READER_COOKIE = "engage_reader"
READER_COOKIE_DAYS = 400  # the longest a browser keeps a cookie
MAX_RECIPIENT = 200
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # The link is the credential: never hand it to another site in a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


# Registered for HTTPException, not EngageError: Flask files a handler under its class's
# status code, and engage's errors have many.
@bp.errorhandler(HTTPException)
def _refused(exc: HTTPException) -> Any:
    """A page a person can read (or JSON for an AMP form), with the error's status."""
    if request.endpoint == "ballot.amp_vote":
        return errors.handle_http_exception(exc)
    errors.note_refusal(exc)
    if not isinstance(exc, errors.EngageError):
        return _page("ballot.html", exc.code or 400, error=exc.description)
    response = _page("ballot.html", exc.code or 400, error=exc.message)
    response.headers.update(exc.extra_headers)
    return response


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = make_response(render_template(template, **context), status)
    response.headers.update(_PAGE_HEADERS)
    return response


def _readers_only() -> None:
    """Forbidden for a request `agents.why_not_counted` refuses: it must not count."""
    if agents.why_not_counted(request.method, request.headers) is not None:
        raise errors.Forbidden("Not counted: this request did not come from a reader's "
                               "browser. Open the page in your browser and try again.")


def _vote(article_id: str, reader: str, choice: str, channel: str) -> reactions.Reactions:
    result, changed = reactions.vote(get_store(), article_id, reader, current_address_hash(),
                                     choice, None, networks=current_network_hashes(),
                                     channel=channel)
    metrics.vote_outcome("reaction", changed)
    return result


def _choice(article_id: str, choice: str | None) -> str:
    """One of the article's choices (its reaction set: docs/sites.md)."""
    choices = _article(article_id)["reaction_set"]["choices"]
    if choice is None or choice not in choices:
        raise errors.ValidationFailed(f"Choose one of: {', '.join(choices)}.")
    return choice


# -- newsletters -------------------------------------------------------------------------
@bp.route("/v/<token>/<choice>", methods=["GET", "POST"])
def email_vote(token: str, choice: str) -> Response:
    """A newsletter's vote link. Opening it (GET, HEAD) never counts: mail scanners and
    link previewers open links before people do. Its page's button POSTs the vote.

    No CSRF token: the signed link and its recipient are the whole credential, and no
    cookie rides along, so a forged POST can do nothing its author could not do alone.
    """
    store, identity = get_store(), get_identity()
    article_id = identity.vote_link(token, store.now().timestamp())
    choice = _choice(article_id, choice)
    recipient = request.args.get("r", "")
    if not recipient or len(recipient) > MAX_RECIPIENT or schemas.CONTROL_CHARACTERS.search(
            recipient):
        raise errors.BadVoteLink("This vote link lacks who it was sent to: the newsletter "
                                 "did not fill its recipient in.")
    reader = identity.mail_reader(article_id, recipient)
    if request.method == "POST":
        _readers_only()
        _vote(article_id, reader, choice, "email")
        return redirect(request.full_path, 303)  # a reload shows the page, posts nothing
    result = reactions.read(store, article_id, reader)
    article = articles.get(store, article_id)
    if result is None or article is None:
        raise errors.UnknownArticle()
    return _page("ballot.html", article=article, choice=choice, result=result,
                 token=token, recipient=recipient)


# -- the widget's form, without JavaScript -------------------------------------------------
def _article_origins(article: dict[str, Any]) -> set[str]:
    """The article page's origin and its site's publisher origins."""
    parts = urlsplit(article["url"])
    site = sites.site_or_default(get_store(), article["site"])
    return {f"{parts.scheme}://{parts.netloc}", *site["origins"]}


def _article(article_id: str) -> dict[str, Any]:
    article = articles.get(get_store(), article_id)
    if article is None:
        raise errors.UnknownArticle()
    return article


def _cookie_reader(renew: bool = False) -> tuple[str | None, str | None]:
    """(reader, token to keep) of the request's READER_COOKIE, read as the widget's token
    is (erased or renewed since: none); one past READER_TOKEN_DAYS is none either, or
    with `renew` (a vote) renewed for the same reader, as the widget does. A vote looks
    the token up as the widget's vote does (this process's copy of the revocations)."""
    token = request.cookies.get(READER_COOKIE)
    try:
        read = reader_token(token=token, voting=renew) if token else None
        return (read[1] if read else None), None
    except errors.ReaderExpired:
        if not renew:
            return None, None
        read = reader_token(renewing=True, token=token)
        assert read is not None
        return read[1], renew_reader(read)
    except errors.InvalidReader:
        return None, None


def _form_vote(article_id: str, channel: str) -> tuple[reactions.Reactions, str | None]:
    """Count the posted choice for the cookie's reader, or for a new reader minted from
    the reader-token budgets; returns the counts and the reader's token to keep when it
    is new."""
    choice = _choice(article_id, request.form.get("choice"))
    _readers_only()
    reader, kept = _cookie_reader(renew=True)
    if reader is None:
        kept = mint_for_client()
        reader = get_identity().reader_from_token(kept)
    return _vote(article_id, reader, choice, channel), kept


def _keep_reader(response: Response, token: str | None) -> Response:
    if token is not None:
        # Cross-site form posts carry only a SameSite=None cookie, which must be Secure.
        secure = current_app.session_interface.get_cookie_secure(current_app)
        response.set_cookie(READER_COOKIE, token, max_age=READER_COOKIE_DAYS * 86400,
                            path="/vote/", secure=secure, httponly=True,
                            samesite="None" if secure else "Lax")
    return response


@bp.post("/vote/<eid:article_id>")
def form_vote(article_id: str) -> Response:
    """The widget's form on a page without JavaScript: count the vote, then back to the
    article's registered URL (or, on a demo server, its demo page), and nowhere else."""
    article = _article(article_id)
    back = request.form.get("next") or article["url"]
    demo = current_app.config["DEMO"] and back == f"/demo/{article_id}"
    if back != article["url"] and not demo:
        raise errors.BadRequest("This form returns readers to its own article only.")
    # The cookie is ambient, so a page of another site must not move its reader's vote.
    # engage's own pages (the demo) pass too: a browser sends the real Host.
    origin = request.headers.get("Origin")
    if origin is not None and origin not in _article_origins(article) and (
            urlsplit(origin).netloc != request.host):
        raise errors.Forbidden("This form may only be sent from the article's own page.")
    _, kept = _form_vote(article_id, "nojs")
    return _keep_reader(redirect(back, 303), kept)


# -- AMP -----------------------------------------------------------------------------------
_AMP_CACHES = (".cdn.ampproject.org", ".bing-amp.com")


def _amp_caches(source: str) -> set[str]:
    """The AMP cache origins that serve pages of `source`: its host with dashes doubled
    and dots made dashes, wrapped in 0- and -0 when that starts like a punycode label
    (as the caches name them; hosts longer than a label get a hashed name, not served)."""
    label = (urlsplit(source).hostname or "").replace("-", "--").replace(".", "-")
    if label[2:4] == "--":
        label = f"0-{label}-0"
    return {f"https://{label}{cache}" for cache in _AMP_CACHES}


@bp.route("/vote/<eid:article_id>/amp", methods=["GET", "POST"])
def amp_vote(article_id: str) -> Response:
    """amp-list reads (GET) and amp-form votes (POST) of an AMP page, with AMP's CORS:
    the page's origin (`__amp_source_origin`) must be the article's or an allowed one,
    and the request's Origin that page's own or one of its AMP caches."""
    article = _article(article_id)
    source = request.args.get("__amp_source_origin", "")
    origin = request.headers.get("Origin")
    if source not in _article_origins(article) or (
            origin is not None and origin not in {source, *_amp_caches(source)}):
        raise errors.Forbidden("This AMP page's origin is not allowed for this article.")
    kept = None
    if request.method == "POST":
        result, kept = _form_vote(article_id, "amp")
    else:
        found = reactions.read(get_store(), article_id, _cookie_reader()[0])
        if found is None:
            raise errors.UnknownArticle()
        result = found
    response = jsonify(items=[{"article": article_id, "counts": result.counts,
                               "total": result.total, "mine": result.mine}])
    response.headers.update({
        "Access-Control-Allow-Origin": origin or source,
        "Access-Control-Allow-Credentials": "true",
        "AMP-Access-Control-Allow-Source-Origin": source,
        "Access-Control-Expose-Headers": "AMP-Access-Control-Allow-Source-Origin",
        "Cache-Control": "private, no-store",
        "Vary": "Origin, Cookie",
    })
    return _keep_reader(response, kept)
