"""The editors' dashboard: sign in with an API token, then overview, article, polls, live.

Sessions keep the token's id and stored digest (never the secret) and are checked
against the token store on every request, so revoking a token signs its sessions out.
Every POST carries a CSRF token: a per-session nonce signed with itsdangerous, sent in
a hidden form field or the `X-CSRF-Token` header. Charts are SVG drawn here, labelled
directly, so the pages need no chart library and no inline script.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Request
from itsdangerous import BadData, URLSafeTimedSerializer
from markupsafe import Markup, escape

from engage import errors
from engage.api.polls import poll_body
from engage.api.stats import export_chunks
from engage.identity import get_identity
from engage.store import events, get_store, links, polls, reactions, stats, tokens
from engage.store.exceptions import StoreRefusal, UnknownPoll

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
RANGES = {
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "all": ("All time", None),
}
_PUBLIC_ENDPOINTS = {"dashboard.signin"}
_JSON_ENDPOINTS = {"dashboard.live_json", "dashboard.export"}
COLORS = {"up": "#2f7d4f", "down": "#c2491d", "grid": "#d9dde3", "text": "#3b4250"}


class DashboardSessionInterface(SecureCookieSessionInterface):
    """The cookie is Secure whenever the request came over HTTPS, also through a trusted
    proxy that terminated TLS and said so in X-Forwarded-Proto."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request_is_https() or super().get_cookie_secure(app)

    # The interface is app-wide, so it runs on every API and widget request, which never
    # carry a cookie: skip building a signing serializer for them (same empty session)
    # and the cookie attributes nobody will use (nothing to set or delete).
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)


def request_is_https() -> bool:
    if request.is_secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and get_identity().is_trusted(request.remote_addr or "")


@bp.record_once
def _configure(state: Any) -> None:
    app: Flask = state.app
    app.session_interface = DashboardSessionInterface()
    app.config["SESSION_COOKIE_NAME"] = "engage_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)


# -- CSRF ------------------------------------------------------------------------------
def _csrf_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="engage.dashboard.csrf")


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(16)
    return str(_csrf_serializer().dumps(session["csrf"]))


def _csrf_valid() -> bool:
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    expected = session.get("csrf")
    if not sent or not expected:
        return False
    try:
        nonce = _csrf_serializer().loads(sent, max_age=SESSION_HOURS * 3600)
    except BadData:
        return False
    return isinstance(nonce, str) and hmac.compare_digest(nonce, expected)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.endpoint in _JSON_ENDPOINTS or best == "application/json" or (
        CSRF_HEADER in request.headers
    )


def _refuse(status: int, code: str, message: str) -> Response:
    if _wants_json():
        return errors.error_response(status, code, message)
    response = Response(
        render_template("dashboard/error.html", title=message, status=status), status=status
    )
    return response


# -- who is signed in --------------------------------------------------------------------
def _signed_in() -> dict[str, Any] | None:
    data = session.get("staff")
    if not isinstance(data, dict):
        return None
    record = tokens.session_record(get_store(), str(data.get("id", "")),
                                   str(data.get("digest", "")))
    if record is None or record.get("role") not in tokens.ROLES:
        session.pop("staff", None)
        return None
    return record


@bp.before_request
def _guard() -> Any:
    if request.method == "POST" and not _csrf_valid():
        return _refuse(403, "csrf_failed", "The form expired or did not come from this site; "
                                           "reload the page and try again.")
    g.staff = _signed_in()
    if g.staff is not None or request.endpoint in _PUBLIC_ENDPOINTS:
        return None
    if _wants_json():
        return errors.error_response(401, "unauthorized", "Sign in to the dashboard first.")
    return redirect(url_for("dashboard.signin", next=request.full_path.rstrip("?")))


@bp.errorhandler(404)
def _not_found(_exc: Exception) -> Response:
    return _refuse(404, "not_found", "Nothing here: the article or poll may have been removed.")


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "pct": pct, "fmt_time": fmt_time}


def _safe_next(target: str | None) -> str:
    """Only a path on this dashboard: never an open redirect."""
    if not target:
        return url_for("dashboard.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/dashboard"):
        return url_for("dashboard.overview")
    return target


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    error = None
    if request.method == "POST":
        token = (request.form.get("token") or "").strip()
        record = tokens.verify(get_store(), token) if token else None
        if record is None:
            error = "That token is not valid. Create one with `engage token create --role editor`."
        else:
            session.clear()  # a fresh session (and CSRF nonce) after signing in
            session.permanent = True
            session["staff"] = {"id": record["id"], "digest": record["hash"]}
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else 200
    return render_template("dashboard/signin.html", error=error), status


@bp.post("/signout")
def signout() -> Any:
    session.clear()
    return redirect(url_for("dashboard.signin"))


# -- formatting helpers -------------------------------------------------------------------
def pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def fmt_time(value: str | None) -> str:
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return when.astimezone(UTC).strftime("%d %b %Y %H:%M UTC")


def _window(range_key: str) -> stats.Range | None:
    span = RANGES[range_key][1]
    if span is None:
        return None
    store = get_store()
    return stats.resolve_range(store, store.now() - span, None)


# -- SVG charts ------------------------------------------------------------------------
def _nice_max(value: int) -> int:
    for power in range(0, 9):
        for step in (1, 2, 5):
            candidate = step * 10**power
            if candidate >= value:
                return max(candidate, 1)
    return value


def reactions_chart(series: dict[str, Any]) -> Markup:
    """Diverging columns: the first choice up, the others down, labelled on the chart."""
    points = series["points"]
    choices = series["choices"]
    up_choice, down_choices = choices[0], choices[1:]
    ups = [p["added"][up_choice] for p in points]
    downs = [sum(p["added"][c] for c in down_choices) for p in points]
    width, height = 860, 300
    left, right, top, bottom = 58, 12, 40, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    scale = _nice_max(max(ups + downs + [1]))
    mid = top + plot_h / 2
    half = plot_h / 2
    step = plot_w / max(1, len(points))
    bar = max(1.0, step * 0.72)
    hourly = series["bucket"] == "hour"
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(up_choice)} and {escape("/".join(down_choices))} '
        f'reactions per {series["bucket"]}</title>',
    ]
    for value, y in ((scale, top), (0, mid), (scale, top + plot_h)):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{COLORS["grid"]}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="axis">{value}</text>')
    for index, point in enumerate(points):
        x = left + index * step + (step - bar) / 2
        start = fmt_time(point["start"])
        if ups[index]:
            h = half * ups[index] / scale
            parts.append(f'<rect x="{x:.1f}" y="{mid - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS["up"]}"><title>{escape(start)}: '
                         f'{ups[index]} {escape(up_choice)}</title></rect>')
        if downs[index]:
            h = half * downs[index] / scale
            parts.append(f'<rect x="{x:.1f}" y="{mid:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS["down"]}"><title>{escape(start)}: '
                         f'{downs[index]} {escape("/".join(down_choices))}</title></rect>')
    ticks = min(5, len(points))
    for t in range(ticks):
        index = round(t * (len(points) - 1) / max(1, ticks - 1))
        when = datetime.fromisoformat(points[index]["start"].replace("Z", "+00:00"))
        label = when.strftime("%d %b %H:00" if hourly else "%d %b")
        x = left + index * step + step / 2
        anchor = "start" if t == 0 else "end" if t == ticks - 1 else "middle"
        # Odd ticks give way on a phone, where the text is scaled up (dashboard.css).
        kind = "axis tick-minor" if t % 2 else "axis"
        parts.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="{anchor}" '
                     f'class="{kind}">{label}</text>')
    up_total, down_total = sum(ups), sum(downs)
    parts.append(f'<text x="{left}" y="20" class="label" fill="{COLORS["up"]}">'
                 f'▲ {escape(up_choice)}: {up_total} in range</text>')
    parts.append(f'<text x="{width - right}" y="20" text-anchor="end" class="label" '
                 f'fill="{COLORS["down"]}">▼ {escape("/".join(down_choices))}: '
                 f'{down_total} in range</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def sections_chart(rows: list[dict[str, Any]], choices: list[str]) -> Markup:
    """One 100 % bar per section, its approval share; name and size written above it."""
    if not rows:
        return Markup('<p class="muted">No sections yet.</p>')
    width, row_h = 480, 58
    height = row_h * len(rows)
    parts = [f'<svg class="chart sections" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Approval by section" xmlns="http://www.w3.org/2000/svg">']
    for index, row in enumerate(rows):
        y = index * row_h
        share = row["approval"]
        plural = "s" if row["articles"] != 1 else ""
        parts.append(f'<text x="0" y="{y + 17}" class="label">{escape(row["section"])}</text>')
        parts.append(f'<text x="{width}" y="{y + 17}" text-anchor="end" class="axis">'
                     f'{row["total"]} votes · {row["articles"]} article{plural}</text>')
        parts.append(f'<rect x="0" y="{y + 25}" width="{width}" height="24" rx="3" '
                     f'fill="{COLORS["grid"]}"/>')
        if share is None:
            parts.append(f'<text x="8" y="{y + 42}" class="axis">no votes</text>')
            continue
        yes_w = width * share
        parts.append(f'<rect x="0" y="{y + 25}" width="{yes_w:.1f}" height="24" rx="3" '
                     f'fill="{COLORS["up"]}"/>')
        text = f"{pct(share)} {escape(choices[0])}"
        if share > 0.3:
            parts.append(f'<text x="8" y="{y + 42}" class="inbar">{text}</text>')
        else:
            parts.append(f'<text x="{yes_w + 6:.1f}" y="{y + 42}" class="axis">{text}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# -- pages --------------------------------------------------------------------------------
@bp.get("")
def overview() -> Any:
    range_key = request.args.get("range", "all")
    if range_key not in RANGES:
        abort(404)
    sort = request.args.get("sort", "approval")
    if sort not in stats.SORTS:
        abort(404)
    store = get_store()
    window = _window(range_key)
    ranked = stats.ranked(store, sort, None, window)
    choices = list(store.config["CHOICES"])
    rated = sorted((a for a in ranked if a["score"] is not None),
                   key=lambda a: (a["score"], a["total"]), reverse=True)
    # Top and bottom never overlap: with few rated articles each gets half.
    top_n, bottom_n = min(5, (len(rated) + 1) // 2), min(5, len(rated) // 2)
    section_rows = stats.group_sections(ranked, choices)
    trending = sorted(ranked, key=stats.SORTS["trending"], reverse=True)
    return render_template(
        "dashboard/overview.html",
        page="overview",
        ranges=RANGES,
        range_key=range_key,
        sort=sort,
        window=window,
        choices=choices,
        totals=stats.totals(ranked, choices),
        ranked=ranked[:50],
        top=rated[:top_n],
        bottom=list(reversed(rated[len(rated) - bottom_n:])) if bottom_n else [],
        trending=[a for a in trending if a["trending"]["last_hour"] > 0][:5],
        sections=section_rows,
        sections_svg=sections_chart(section_rows, choices),
    )


@bp.get("/articles/<eid:article_id>")
def article(article_id: str) -> Any:
    bucket = request.args.get("bucket", "hour")
    if bucket not in ("hour", "day"):
        abort(404)
    store = get_store()
    window = stats.resolve_range(store, None, None, bucket=bucket)
    series = stats.article_series(store, article_id, window)
    figures = stats.article_figures(store, [article_id]).get(article_id)
    if series is None or figures is None:
        abort(404)
    # Reasons of the "no" votes standing now (a changed vote takes its reason along).
    reasons = reactions.reasons(store, article_id)
    return render_template(
        "dashboard/article.html",
        page="article",
        article=figures,
        bucket=bucket,
        series=series,
        chart=reactions_chart(series),
        reasons=sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])),
        reasons_total=sum(reasons.values()),
        polls=[poll_body(poll, staff=True)
               for poll in polls.for_articles(store, [article_id]).get(article_id, [])],
        links=links.stats(store, article_id),
        poll_votes=sum(p["poll_votes"] for p in series["points"]),
    )


@bp.get("/polls")
def poll_list() -> Any:
    found = [poll_body(poll, staff=True) for poll in polls.list_all(get_store())]
    return render_template(
        "dashboard/polls.html",
        page="polls",
        open_polls=[p for p in found if p["status"] == "open"],
        closed_polls=[p for p in found if p["status"] == "closed"],
        notice=request.args.get("notice"),
    )


@bp.post("/polls/<eid:poll_id>/status")
def poll_status(poll_id: str) -> Any:
    wanted = request.form.get("status")
    if wanted not in ("open", "closed"):
        return _refuse(422, "validation_failed", "Status must be open or closed.")
    store = get_store()
    change: dict[str, Any] = {"status": wanted}
    if wanted == "open":
        poll = polls.get(store, poll_id)
        if poll is None:
            abort(404)
        closes_at = poll.closes_at
        if closes_at and datetime.fromisoformat(closes_at.replace("Z", "+00:00")) <= store.now():
            change["closes_at"] = None  # reopening a poll whose deadline passed clears it
    try:
        polls.patch(store, poll_id, change)
    except UnknownPoll:
        abort(404)
    except StoreRefusal as exc:  # e.g. a schedule that no longer makes sense
        return redirect(url_for("dashboard.poll_list", notice=errors.http_error(exc).message))
    verb = "closed" if wanted == "closed" else "reopened"
    return redirect(url_for("dashboard.poll_list", notice=f"Poll {verb}."))


@bp.get("/live")
def live() -> Any:
    return render_template("dashboard/live.html", page="live")


@bp.get("/live.json")
def live_json() -> Any:
    """What the live page polls every few seconds: standings and the newest events."""
    store = get_store()
    ranked = stats.ranked(store, "trending")
    recent = events.recent(store, limit=25)
    return jsonify(
        now=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        choices=list(store.config["CHOICES"]),
        totals=stats.totals(ranked, list(store.config["CHOICES"])),
        articles=[
            {k: a[k] for k in ("id", "title", "section", "counts", "total", "approval",
                               "score")} | {"last_hour": a["trending"]["last_hour"]}
            for a in ranked[:20]
        ],
        events=[
            {k: e.get(k, "") for k in ("id", "type", "article", "poll", "choice", "previous",
                                        "reason", "link")}
            | {"time": datetime.fromtimestamp(e["ts_ms"] / 1000, UTC).strftime("%H:%M:%S")}
            for e in recent
        ],
    )


@bp.get("/export")
def export() -> Response:
    """The full event export for a signed-in editor (same stream as the API's)."""
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "ndjson"):
        return errors.error_response(422, "validation_failed", "Format is csv or ndjson.",
                                     {"format": ["Must be csv or ndjson."]})
    found = events.iter_events(get_store())
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = Response(stream_with_context(export_chunks(found, fmt)), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="engage-events.{fmt}"'
    return response
