"""Editors' numbers: ranked articles, one article's time series, the event export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView

from engage import errors, schemas, timerange
from engage.api import Blueprint
from engage.api.spec import ADMIN, EDITOR
from engage.identity import (
    check_article_site,
    current_staff,
    figures_site,
    require_role,
    section_scope,
    site_scope,
    visible_articles,
)
from engage.store import Store, audit, events, get_store, sites, stats

blp = Blueprint("stats", __name__, description="Editors' numbers and the event export.")

EXPORT_COLUMNS = (
    "id", "time", "type", "article", "poll", "choice", "previous", "reason",
    "options", "link", "reader",
)
# Lines are sent in chunks of about this many bytes: fewer writes, still bounded memory.
_CHUNK_BYTES = 64 * 1024


def resolve_window(
    store: Store,
    since: datetime | None,
    until: datetime | None,
    bucket: str | None = None,
    default_span: timedelta | None = None,
) -> timerange.Range:
    """The range asked for, checked against the buckets' retention; 422 when it cannot
    be served."""
    try:
        return timerange.resolve(
            since, until, now=store.now(), bucket=bucket, default_span=default_span,
            hour_days=int(store.config["HOUR_BUCKET_DAYS"]),
            day_days=int(store.config["DAY_BUCKET_DAYS"]),
        )
    except timerange.InvalidRange as exc:
        raise errors.ValidationFailed(exc.message, fields={exc.field: [exc.message]}) from None


def query_window(store: Store, query: dict[str, Any]) -> timerange.Range | None:
    """None (current standings) unless the query names a range."""
    if not (query.get("since") or query.get("until")):
        return None
    longest = timedelta(days=int(store.config["DAY_BUCKET_DAYS"]))
    return resolve_window(store, query.get("since"), query.get("until"), default_span=longest)


# The stats query's search fields, as stats.ranked_page's `search` names them.
SEARCH = {"q": "q", "tag": "tag", "source": "source", "since": "published_since",
          "until": "published_until"}


def window_fields(window: timerange.Range | None) -> dict[str, Any]:
    """The range a figure covers, as the stats replies show it (all None: standings)."""
    return {
        "since": stats.iso(window.since) if window else None,
        "until": stats.iso(window.until) if window else None,
        "bucket": window.granularity if window else None,
    }


@blp.route("/stats/articles")
class RankedArticles(MethodView):
    @blp.arguments(schemas.StatsQuerySchema(), location="query")
    @blp.response(200, schemas.StatsPageSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No valid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an editor.")
    @blp.alt_response(422, schema=schemas.ErrorSchema, description="Bad query.")
    @blp.doc(operationId="listArticleStats", security=EDITOR)
    @require_role("editor")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Articles ranked by approval (Wilson lower bound), votes or trending (editor).

        One site's articles are ranked (`site`; rankings are kept per site), each by
        its own reaction set's approving (first) choice. Without `since`/`until` every
        article is ranked: counts are current standings and link figures all-time.
        With a range, the articles that received votes in it are ranked by net changes
        summed from hourly buckets (when the range starts within the hourly retention)
        or daily buckets. Figures across articles are kept
        from the event streams and trail a vote by at most a few seconds.
        """
        store = get_store()
        window = query_window(store, query)
        offset, limit = query["offset"], query["limit"]
        search = {k: query.get(name) for k, name in SEARCH.items() if query.get(name)}
        site = figures_site(query.get("site"))
        total, page = stats.ranked_page(store, query["sort"], query.get("section"), window,
                                        offset, limit, search=search, site=site,
                                        site_names=site_scope())
        # A ranking is of one site; a search finds and counts the caller's sites only.
        shown = visible_articles(row["id"] for row in page)
        page = page if shown is None else [row for row in page if row["id"] in shown]
        return {"sort": "newest" if search else query["sort"], "site": site,
                **window_fields(window),
                "total": total, "limit": limit, "offset": offset, "articles": page}


@blp.route("/stats/sections")
class SectionFigures(MethodView):
    @blp.arguments(schemas.SectionsQuerySchema(), location="query")
    @blp.response(200, schemas.SectionsSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No valid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an editor.")
    @blp.alt_response(422, schema=schemas.ErrorSchema, description="Bad range.")
    @blp.doc(operationId="getSectionStats", security=EDITOR)
    @require_role("editor")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Each section of one site (`site`): the sums of its articles', most votes first
        (editor)."""
        store = get_store()
        site = figures_site(query.get("site"))
        window = query_window(store, query)
        rows = stats.sections(store, window, site=site)
        limited = (section_scope() or {}).get(site)
        if limited is not None:  # a caller limited to some of the site's sections
            rows = [row for row in rows if row["section"] in limited]
        return {"site": site, **window_fields(window), "sections": rows}


@blp.route("/articles/<eid:article_id>/stats")
class ArticleSeries(MethodView):
    @blp.arguments(schemas.SeriesQuerySchema(), location="query")
    @blp.response(200, schemas.SeriesSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No valid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an editor.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.alt_response(422, schema=schemas.ErrorSchema, description="Bad range.")
    @blp.doc(operationId="getArticleStats", security=EDITOR)
    @require_role("editor")
    def get(self, query: dict[str, Any], article_id: str) -> dict[str, Any]:
        """Reactions, "no" reasons, poll votes and link figures per hour or day (editor)."""
        store = get_store()
        window = resolve_window(store, query.get("since"), query.get("until"), query["bucket"])
        series = stats.article_series(store, article_id, window)
        if series is None:
            raise errors.UnknownArticle()
        return series


def _millis(value: datetime | None) -> int | None:
    # Stream ids start at the epoch: an earlier time would be an invalid (negative) id.
    return max(0, int(value.timestamp() * 1000)) if value else None


def _timed(event: dict[str, Any]) -> dict[str, Any]:
    time = datetime.fromtimestamp(event["ts_ms"] / 1000, UTC).isoformat(timespec="milliseconds")
    return {**event, "time": time.replace("+00:00", "Z")}


def export_chunks(found: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(EXPORT_COLUMNS)
    for event in found:
        row = _timed(event)
        if fmt == "csv":
            writer.writerow([str(row.get(column, "")) for column in EXPORT_COLUMNS])
        else:
            buffer.write(json.dumps(row, separators=(",", ":")) + "\n")
        if buffer.tell() >= _CHUNK_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def scoped_events(store: Store, found: Iterator[dict[str, Any]]
                  ) -> Iterator[dict[str, Any]]:
    """The events of the articles (and polls) of the caller's sites: all for a caller
    who sees every site."""
    scope = site_scope()
    if scope is None and section_scope() is None:
        return found
    shown = sites.articles_of(store, scope if scope is not None else list(sites.listing(store)))
    shown = visible_articles(shown) or set()  # and of their sections, when limited to some
    return (event for event in found if event.get("article", "") in shown)


@blp.route("/events/export")
class EventExport(MethodView):
    @blp.arguments(schemas.ExportQuerySchema(), location="query")
    @blp.alt_response(200, description="CSV or NDJSON, streamed, oldest event first.")
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No valid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an editor.")
    @blp.alt_response(422, schema=schemas.ErrorSchema, description="Bad query.")
    @blp.doc(operationId="exportEvents", security=EDITOR, responses={200: {"content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    }}})
    @require_role("editor")
    def get(self, query: dict[str, Any]) -> Response:
        """Every recorded event in the range, streamed as CSV or NDJSON (editor).

        Memory stays constant however many events match: the streams are merged by
        id a page at a time.
        """
        fmt = query["format"]
        store = get_store()
        if query.get("article"):
            check_article_site(query["article"])
        audit.record(store, current_staff(), "events.export", "api", query)
        found = scoped_events(store, events.iter_events(
            store,
            since_ms=_millis(query.get("since")),
            until_ms=_millis(query.get("until")),
            types=query["type"],
            article=query.get("article"),
        ))
        mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        response = Response(stream_with_context(export_chunks(found, fmt)), mimetype=mimetype)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="engage-events-{stamp}.{fmt}"'
        )
        response.headers["Cache-Control"] = "private, no-store"
        return response


@blp.route("/audit-log")
class AuditLog(MethodView):
    @blp.response(200, schemas.AuditLogSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No or invalid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an admin.")
    @blp.doc(operationId="listAuditLog", security=ADMIN)
    @require_role("admin")
    def get(self) -> dict[str, Any]:
        """The newest 100 staff actions on reader data (event and poll exports), newest
        first (admin)."""
        return {"entries": audit.entries(get_store())}
