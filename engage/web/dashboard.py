"""The editors' dashboard pages: sign-in, overview, article, polls, live and export.

Sessions and CSRF are in `session.py`, the SVG charts in `charts.py`; the views here
read the store and render the templates in `templates/dashboard/`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from marshmallow import ValidationError

from engage import errors, schemas, timerange
from engage.api.polls import poll_body, poll_export
from engage.api.reactions import email_vote_links
from engage.api.stats import SEARCH, export_chunks, resolve_window, scoped_events
from engage.identity import (
    check_scope,
    home_site,
    section_scope,
    visible_articles,
    visible_sites,
)
from engage.store import (
    aggregates,
    articles,
    audit,
    events,
    get_store,
    links,
    polls,
    reactions,
    registry,
    stats,
)
from engage.web import session
from engage.web.charts import reactions_chart, sections_chart
from engage.web.formatting import fmt_time, pct
from engage.web.history import link_history, poll_history

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

_PUBLIC_ENDPOINTS = {"dashboard.signin", "oidc.start", "oidc.callback"}
ARTICLES_PER_PAGE = 50
UNVERIFIED_SHOWN = 20  # failed page verifications listed per site on the overview
FEED_READ = 200  # feed entries the live page reads a poll, impressions among them
_JSON_ENDPOINTS = {"dashboard.live_json", "dashboard.export"}


@bp.record_once
def _configure(state: Any) -> None:
    session.init_app(state.app)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.endpoint in _JSON_ENDPOINTS or best == "application/json" or (
        session.CSRF_HEADER in request.headers
    )


def refuse(status: int, code: str, message: str) -> Response:
    if _wants_json():
        return errors.error_response(status, code, message)
    return Response(
        render_template("dashboard/error.html", title=message, status=status), status=status
    )


@bp.before_request
def _guard() -> Any:
    if request.method == "POST" and not session.csrf_valid():
        return refuse(403, "csrf_failed", "The form expired or did not come from this site; "
                                           "reload the page and try again.")
    g.staff = session.signed_in()
    if g.staff is not None:
        check_scope()
        return None
    if request.endpoint in _PUBLIC_ENDPOINTS:
        return None
    if _wants_json():
        return errors.error_response(401, "unauthorized", "Sign in to the dashboard first.")
    return redirect(url_for("dashboard.signin", next=request.full_path.rstrip("?")))


@bp.errorhandler(404)
def _not_found(_exc: Exception) -> Response:
    return refuse(404, "not_found", "Nothing here: the article or poll may have been removed.")


@bp.errorhandler(errors.Forbidden)
def _forbidden(exc: errors.Forbidden) -> Response:
    return refuse(403, exc.error_code, exc.message)


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": session.csrf_token, "pct": pct, "fmt_time": fmt_time}


# Control characters cannot go in a Location header; a backslash reads as a slash to
# some browsers, which would make `/\evil.com` another host.
_UNSAFE_IN_NEXT = re.compile(r"[\x00-\x1f\x7f\\]")


def safe_next(target: str | None) -> str:
    """Only a path on this dashboard: never an open redirect."""
    if not target or _UNSAFE_IN_NEXT.search(target):
        return url_for("dashboard.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/dashboard"):
        return url_for("dashboard.overview")
    return target


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    error = None
    if request.method == "POST":
        if session.sign_in((request.form.get("token") or "").strip()):
            return redirect(safe_next(request.args.get("next")))
        error = ("That token is not valid. Create one with "
                 "`engage token create --role editor --name NAME`.")
    status = 401 if error else 200
    return render_template("dashboard/signin.html", error=error), status


@bp.post("/signout")
def signout() -> Any:
    session.sign_out()
    return redirect(url_for("dashboard.signin"))


# -- pages --------------------------------------------------------------------------------
@bp.get("")
def overview() -> Any:
    range_key = request.args.get("range", "all")
    if range_key not in timerange.PRESETS:
        abort(404)
    sort = request.args.get("sort", "approval")
    if sort not in stats.SORTS:
        abort(404)
    page = request.args.get("page", 1, type=int)
    if page < 1:
        abort(404)
    store = get_store()
    span = timerange.PRESETS[range_key][1]
    window = None if span is None else resolve_window(store, store.now() - span, None)
    # The site switcher: figures are kept per site, so one of the caller's at a time.
    names, site = visible_sites(), request.args.get("site") or None
    if site is not None and site not in names:
        abort(404)
    site = site or home_site()
    choices = stats.site_choices(store, site)
    asked = {k: request.args.get(k, "").strip()
             for k in ("q", "section", "tag", "source", "from", "to")}
    try:  # the stats API's rules for a search; a day's range runs to its last second
        query = schemas.StatsQuerySchema().load({
            **{k: asked[k] for k in ("q", "section", "tag", "source") if asked[k]},
            **({"published_since": asked["from"] + "T00:00:00Z"} if asked["from"] else {}),
            **({"published_until": asked["to"] + "T23:59:59Z"} if asked["to"] else {}),
        })
    except ValidationError as exc:
        named = ", ".join(sorted(exc.messages))
        return refuse(422, "validation_failed", f"The search could not be read: {named}.")
    search = {k: query.get(name) for k, name in SEARCH.items() if query.get(name)}
    # A search finds and counts this site's articles only, as its rankings do.
    total, ranked = stats.ranked_page(store, sort, query.get("section"), window,
                                      (page - 1) * ARTICLES_PER_PAGE, ARTICLES_PER_PAGE,
                                      search=search, site=site, site_names=[site])
    found = {**stats.overview(store, window, site=site), "ranked": ranked}
    found = within_sections(found, site, choices)
    return render_template(
        "dashboard/overview.html",
        unverified=[(site, failure)
                    for failure in registry.failures(store, site, UNVERIFIED_SHOWN)],
        page="overview",
        ranges=timerange.PRESETS,
        range_key=range_key,
        sort=sort,
        window=window,
        choices=choices,
        sites=names if len(names) > 1 else [],
        site=site,
        **found,  # totals, ranked, top, bottom, trending, sections
        asked=asked,
        searching=bool(search),
        section_names=[name for name in articles.sections(store, [site])
                       if name in (section_scope() or {}).get(site, [name])],
        page_number=page,
        pages=max(1, -(-total // ARTICLES_PER_PAGE)),
        total=total,
        sections_svg=sections_chart(found["sections"], choices),
    )


@bp.get("/articles/<eid:article_id>")
def article(article_id: str) -> Any:
    bucket = request.args.get("bucket", "hour")
    if bucket not in ("hour", "day"):
        abort(404)
    store = get_store()
    window = resolve_window(store, None, None, bucket)
    series = stats.article_series(store, article_id, window)
    if series is None:
        abort(404)
    # Reasons of the "no" votes standing now (a changed vote takes its reason along).
    reasons = reactions.reasons(store, article_id)
    email_links = None
    if "merge_tag" in request.args:  # the newsletter button
        try:
            query = schemas.EmailLinksQuerySchema().load(request.args)
        except ValidationError as exc:
            return refuse(422, "validation_failed", " ".join(
                f"{field}: {' '.join(messages)}" for field, messages in exc.normalized_messages()
                .items()))
        email_links = email_vote_links(article_id, query)
    link_rows = links.stats(store, article_id)
    return render_template(
        "dashboard/article.html",
        page="article",
        article=stats.figures(store, [article_id])[0],
        bucket=bucket,
        series=series,
        chart=reactions_chart(series),
        reasons=sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])),
        reasons_total=sum(reasons.values()),
        polls=[poll_body(poll, staff=True)
               for poll in polls.for_articles(store, [article_id]).get(article_id, [])],
        links=link_rows,
        link_history=link_history(series, link_rows),
        poll_votes=sum(p["poll_votes"] for p in series["points"]),
        channels={ch: sum(p["channels"][ch] for p in series["points"])
                  for ch in reactions.CHANNELS},
        refused=refused_rows(series["points"], bucket),
        email_links=email_links,
        email_link_days=current_app.config["EMAIL_LINK_DAYS"],
    )


def refused_rows(points: list[dict[str, Any]], bucket: str) -> list[dict[str, Any]]:
    """The buckets in which something was refused, newest first; reaction and poll
    votes are shown together."""
    label = "%d %b %H:%M" if bucket == "hour" else "%d %b %Y"
    rows = []
    for point in reversed(points):
        r = point["refused"]
        if not any(r.values()):
            continue
        throttled = r["votes_throttled"] + r["poll_votes_throttled"]
        repeated = r["votes_duplicate"] + r["poll_votes_duplicate"]
        clicks = (r["clicks_duplicate"] + r["clicks_throttled"] + r["clicks_bot"]
                  + r["clicks_prefetch"])
        start = datetime.fromisoformat(point["start"])
        # The refused counters themselves too (clicks by reason, impressions over cap).
        rows.append({**r, "label": start.strftime(label), "votes": throttled + repeated,
                     "throttled": throttled, "repeated": repeated, "clicks": clicks})
    return rows


POLLS_PER_PAGE = 50


@bp.get("/polls")
def poll_list() -> Any:
    page = request.args.get("page", 1, type=int)
    if page < 1:
        abort(404)
    found, more = polls.list_page(get_store(), None, (page - 1) * POLLS_PER_PAGE,
                                  POLLS_PER_PAGE)
    store = get_store()
    visible = visible_articles(poll.article or "" for poll in found)
    shown = [poll_body(poll, staff=True) for poll in found
             if visible is None or (poll.article or "") in visible]
    named = articles.get_many(store, sorted({p["article"] for p in shown if p["article"]}))
    now = store.now()
    for p in shown:
        p["article_title"] = named.get(p["article"] or "", {}).get("title", "")
        # Closed by an editor before its deadline: the planned time no longer applies.
        p["closed_early"] = p["status"] == "closed" and bool(p["closes_at"]) and (
            datetime.fromisoformat(p["closes_at"]) > now)
    return render_template(
        "dashboard/polls.html",
        page="polls",
        open_polls=[p for p in shown if p["status"] == "open"],
        closed_polls=[p for p in shown if p["status"] == "closed"],
        notice=request.args.get("notice"),
        page_number=page,
        newer=page - 1 if page > 1 else None,
        older=page + 1 if more else None,
    )


@bp.get("/polls/<eid:poll_id>")
def poll_page(poll_id: str) -> Any:
    """One poll: its results and the history of its answers."""
    bucket = request.args.get("bucket", "hour")
    if bucket not in ("hour", "day"):
        abort(404)
    store = get_store()
    poll = polls.get(store, poll_id)
    if poll is None:
        abort(404)
    series = stats.poll_series(store, poll, resolve_window(store, None, None, bucket))
    shown = poll_body(poll, staff=True)
    named = articles.get_many(store, [poll.article]) if poll.article else {}
    return render_template(
        "dashboard/poll.html",
        page="polls",
        poll=shown,
        article_title=named.get(poll.article or "", {}).get("title", ""),
        bucket=bucket,
        series=series,
        history=poll_history(series),
    )


@bp.post("/polls/<eid:poll_id>/status")
def poll_status(poll_id: str) -> Any:
    wanted = request.form.get("status")
    if wanted not in ("open", "closed"):
        return refuse(422, "validation_failed", "Status must be open or closed.")
    store = get_store()
    change: dict[str, Any] = {"status": wanted}
    if wanted == "open":
        poll = polls.get(store, poll_id)
        if poll is None:
            abort(404)
        closes_at = poll.closes_at
        if closes_at and datetime.fromisoformat(closes_at) <= store.now():
            change["closes_at"] = None  # reopening a poll whose deadline passed clears it
    try:
        polls.patch(store, poll_id, change)
    except errors.UnknownPoll:
        abort(404)
    except errors.EngageError as exc:  # e.g. a schedule that no longer makes sense
        return redirect(url_for("dashboard.poll_list", notice=exc.message))
    verb = "closed" if wanted == "closed" else "reopened"
    return redirect(url_for("dashboard.poll_list", notice=f"Poll {verb}."))


@bp.get("/polls/<eid:poll_id>/export.csv")
def poll_csv(poll_id: str) -> Response:
    return poll_export(poll_id, "dashboard")


@bp.route("/polls/<eid:poll_id>/delete", methods=["GET", "POST"])
def poll_delete(poll_id: str) -> Any:
    """GET asks to confirm (votes and results go with the poll); POST deletes (admins)."""
    if g.staff.get("role") != "admin":
        return refuse(403, "forbidden", "Only admins delete polls.")
    poll = polls.get(get_store(), poll_id)
    if poll is None:
        abort(404)
    if request.method == "GET":
        return render_template("dashboard/poll_delete.html", page="polls", poll=poll)
    polls.delete(get_store(), poll_id)
    return redirect(url_for("dashboard.poll_list", notice=f"Poll deleted: {poll.question}"))


def within_sections(found: dict[str, Any], site: str, choices: list[str]) -> dict[str, Any]:
    """What a caller limited to some of the site's sections sees of its figures: their
    sections' articles, sections and totals."""
    limited = (section_scope() or {}).get(site)
    if limited is None:
        return found
    lists = [key for key in ("ranked", "top", "bottom", "trending", "articles") if key in found]
    shown = visible_articles(a["id"] for key in lists for a in found[key]) or set()
    found = {**found, **{key: [a for a in found[key] if a["id"] in shown] for key in lists}}
    if "sections" in found:
        found["sections"] = [r for r in found["sections"] if r["section"] in limited]
        found["totals"] = stats.site_totals(found["sections"], choices)
    return found


def live_site() -> str:
    """The site the live page follows (`?site=`, else the caller's first): 404 for one
    the caller may not see."""
    names, site = visible_sites(), request.args.get("site") or None
    if site is not None and site not in names:
        abort(404)
    return site or home_site()


@bp.get("/live")
def live() -> Any:
    site = live_site()
    names = visible_sites()
    return render_template("dashboard/live.html", page="live", site=site,
                           sites=names if len(names) > 1 else [])


@bp.get("/live.json")
def live_json() -> Any:
    """What the live page polls every few seconds: standings and the events applied
    since the cursor it sends back (`since`), newest first."""
    site = live_site()
    store = get_store()
    choices = stats.site_choices(store, site)
    now = store.now()
    trend = stats.trend_inputs(store, now, site)
    _, moving = stats.ranked_page(store, "trending", limit=20, now=now, trend=trend, site=site)
    limited = within_sections({"articles": moving, "sections": stats.sections(
        store, None, now, trend, site=site)}, site, choices)
    moving = limited["articles"]
    read = aggregates.feed_since(store, request.args.get("since") or None, FEED_READ)
    cursor = read[0][0] if read else request.args.get("since", "")
    # The feed holds every site's events: this site's only (their sections', if limited).
    shown = visible_articles((f.get("article", "") for _, f in read), site) or set()
    read = [(i, f) for i, f in read if f.get("article", "") in shown]
    # Impressions come by the dozen for every page view: counted, not listed.
    feed = [(i, f) for i, f in read if f.get("type") != "link.impression"][:25]
    named = articles.get_many(store, sorted({f["article"] for _, f in feed if f.get("article")}))
    asked = polls.get_many(store, sorted({f["poll"] for _, f in feed if f.get("poll")}), None, now)
    return jsonify(
        now=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        choices=choices,
        cursor=cursor,
        impressions=len(read) - sum(1 for _, f in read if f.get("type") != "link.impression"),
        totals=stats.site_totals(limited["sections"], choices),
        articles=[
            {k: a[k] for k in ("id", "title", "section", "counts", "total", "approval",
                               "score")} | {"last_hour": a["trending"]["last_hour"]}
            for a in moving
        ],
        events=[
            {k: fields.get(k, "") for k in ("type", "article", "poll", "choice", "previous",
                                             "reason", "link")}
            | {"id": fields.get("src", feed_id),
               "time": datetime.fromtimestamp(int(fields.get("src", feed_id).split("-")[0])
                                              / 1000, UTC).strftime("%H:%M:%S"),
               "title": named.get(fields.get("article", ""), {}).get("title", ""),
               "question": asked[fields["poll"]].question if fields.get("poll") in asked else ""}
            for feed_id, fields in feed
        ],
    )


@bp.get("/export")
def export() -> Response:
    """The full event export for a signed-in editor (same stream as the API's)."""
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "ndjson"):
        return errors.error_response(422, "validation_failed", "Format is csv or ndjson.",
                                     {"format": ["Must be csv or ndjson."]})
    article = request.args.get("article") or None  # one article's events
    if article is not None and not schemas.ID_RE.fullmatch(article):
        return errors.error_response(422, "validation_failed", "Unknown article id.",
                                     {"article": ["Not an article id."]})
    store = get_store()
    audit.record(store, g.staff, "events.export", "dashboard",
                 {"format": fmt, "article": article})
    found = scoped_events(store, events.iter_events(store, article=article))
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = Response(stream_with_context(export_chunks(found, fmt)), mimetype=mimetype)
    name = f"engage-events-{article}" if article else "engage-events"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
