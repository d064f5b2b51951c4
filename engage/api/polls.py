"""Reader polls: editors ask, readers vote (one changeable vote each), results when visible."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, stream_with_context
from flask.views import MethodView

from engage import errors, metrics, schemas
from engage.api import Blueprint
from engage.api.caching import PRIVATE, Answer, conditional, lifetimes, shared
from engage.api.spec import ADMIN, EDITOR, READER, READER_OR_STAFF_OPTIONAL
from engage.formulas import percentages
from engage.identity import (
    bearer_token,
    check_article_site,
    current_address_hash,
    current_network_hashes,
    current_reader,
    current_staff,
    require_role,
    visible_articles,
)
from engage.store import articles, audit, events, get_store, polls

blp = Blueprint("polls", __name__, description="Reader polls on articles.")

# A reader or staff token changes a poll read, so a shared cache keys on both.
_PERSONAL = ("X-Engage-Reader", "Authorization")


def _staff() -> bool:
    """A bearer token makes the caller staff (who always see results); a bad one is 401."""
    if bearer_token() is None:
        return False
    current_staff()
    return True


def results_visible(poll: polls.Poll, staff: bool) -> bool:
    """What a caller may see of a poll's results. Staff always; readers per the poll's
    visibility mode and its minimum of voters.

    `after_vote` also opens once the poll is closed: the results are final then, and a
    reader who can no longer vote has nothing left to be influenced in.
    """
    if staff:
        return True
    if poll.voters < poll.min_votes:
        return False
    if poll.visibility == "after_vote":
        return bool(poll.mine) or poll.closed
    if poll.visibility == "after_close":
        return poll.closed
    return True


def poll_body(poll: polls.Poll, staff: bool = False) -> dict[str, Any]:
    """The poll as this caller may see it (PollSchema): results null while hidden."""
    results = {
        "counts": poll.counts,
        "percentages": percentages(poll.counts),
        "total": poll.voters,
        "ticks": sum(poll.counts.values()),
    } if results_visible(poll, staff) else None
    return {
        "id": poll.id,
        "question": poll.question,
        "options": poll.options,
        "article": poll.article,
        "multiple": poll.multiple,
        "max_choices": poll.max_choices,
        "closes_at": poll.closes_at,
        "results_visibility": poll.visibility,
        "min_votes": poll.min_votes or None,
        "status": poll.status,
        "created_at": poll.created_at,
        "updated_at": poll.updated_at,
        "results": results,
        "mine": poll.mine,
    }


def _cache_headers(views: list[dict[str, Any]], personal: bool) -> dict[str, str]:
    """Private for a reader or staff; otherwise shared-cacheable."""
    if personal:
        return PRIVATE
    ids = [view["article"] for view in views if view["article"]]
    lifetime = sum(lifetimes(ids))
    # A cached "open" must not outlive closes_at.
    return shared(ids, _PERSONAL, revalidate=any(
        _closes_within(view, lifetime) for view in views))


def _closes_within(view: dict[str, Any], seconds: int) -> bool:
    if view["status"] != "open" or not view["closes_at"]:
        return False
    left = datetime.fromisoformat(view["closes_at"]) - get_store().now()
    return left.total_seconds() < seconds


@blp.route("/polls")
class Polls(MethodView):
    @blp.arguments(schemas.PollInSchema())
    @blp.response(201, schemas.PollSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.alt_response(409, schema=schemas.ErrorSchema, description="Chosen id already taken.")
    @blp.alt_response(422, schema=schemas.ErrorSchema, description="Invalid poll.")
    @blp.doc(operationId="createPoll", security=EDITOR)
    @require_role("editor")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a poll (editor), optionally attached to a registered article."""
        store = get_store()
        check_article_site(data.get("article"))
        poll = polls.create(store, data, poll_id=data.pop("id", None))
        return poll_body(poll, staff=True)

    @blp.arguments(schemas.PollListQuerySchema(), location="query")
    @blp.response(200, schemas.PollListSchema)
    @blp.doc(operationId="listPolls", security=EDITOR)
    @require_role("editor")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The polls with their results (editor), newest first, a page at a time;
        filter by status."""
        offset, limit = query["offset"], query["limit"]
        found, more = polls.list_page(get_store(), query.get("status"), offset, limit)
        # Limited to some sites, a page shows theirs only: it may hold fewer than `limit`.
        shown = visible_articles(poll.article or "" for poll in found)
        found = found if shown is None else [p for p in found if (p.article or "") in shown]
        return {
            "polls": [poll_body(poll, staff=True) for poll in found],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more else None,
        }


@blp.route("/polls/<eid:poll_id>")
class Poll(MethodView):
    @conditional
    @blp.response(200, schemas.PollSchema)
    @blp.alt_response(304, description="Not modified (anonymous reads carry an ETag).")
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid token.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown poll.")
    @blp.doc(operationId="getPoll", security=READER_OR_STAFF_OPTIONAL)
    def get(self, poll_id: str) -> Answer:
        """The poll, with results when its visibility allows them for this caller."""
        reader = current_reader(required=False, reading=True)
        staff = _staff()
        poll = polls.get(get_store(), poll_id, reader=reader)
        if poll is None:
            raise errors.UnknownPoll()
        view = poll_body(poll, staff)
        return view, _cache_headers([view], personal=bool(reader or staff))

    @blp.arguments(schemas.PollPatchSchema())
    @blp.response(200, schemas.PollSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown poll.")
    @blp.alt_response(409, schema=schemas.ErrorSchema, description="Editing a closed poll.")
    @blp.alt_response(422, schema=schemas.ErrorSchema, description="Invalid change.")
    @blp.doc(operationId="patchPoll", security=EDITOR)
    @require_role("editor")
    def patch(self, data: dict[str, Any], poll_id: str) -> dict[str, Any]:
        """Close, reopen or reschedule a poll; edit its question or visibility while open."""
        poll, _ = polls.patch(get_store(), poll_id, data)
        return poll_body(poll, staff=True)

    @blp.response(204)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown poll.")
    @blp.doc(operationId="deletePoll", security=ADMIN)
    @require_role("admin")
    def delete(self, poll_id: str) -> None:
        """Delete a poll and its votes (admin)."""
        polls.delete(get_store(), poll_id)


@blp.route("/polls/<eid:poll_id>/votes/mine")
class MyPollVote(MethodView):
    @blp.arguments(schemas.PollVoteInSchema())
    @blp.response(200, schemas.PollSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown poll.")
    @blp.alt_response(409, schema=schemas.ErrorSchema, description="Poll closed.")
    @blp.alt_response(422, schema=schemas.ErrorSchema, description="Options not allowed.")
    @blp.alt_response(429, schema=schemas.ErrorSchema, description="Address throttled.")
    @blp.doc(operationId="putMyPollVote", security=READER)
    def put(self, data: dict[str, Any], poll_id: str) -> Answer:
        """Vote, or change the reader's one vote. Repeating the same vote changes nothing."""
        return _vote(poll_id, data["options"])

    @blp.response(200, schemas.PollSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="Invalid reader token.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown poll.")
    @blp.alt_response(409, schema=schemas.ErrorSchema, description="Poll closed.")
    @blp.doc(operationId="deleteMyPollVote", security=READER)
    def delete(self, poll_id: str) -> Answer:
        """Withdraw the reader's vote while the poll is open."""
        return _vote(poll_id, None)


def _vote(poll_id: str, options: list[str] | None) -> Answer:
    reader = current_reader(voting=True)
    assert reader is not None
    poll, changed = polls.vote(get_store(), poll_id, reader, current_address_hash(), options,
                               networks=current_network_hashes())
    metrics.vote_outcome("poll", changed)  # refusals are counted from their status
    return poll_body(poll), PRIVATE


@blp.route("/articles/<eid:article_id>/polls")
class ArticlePolls(MethodView):
    @conditional
    @blp.response(200, schemas.ArticlePollsSchema)
    @blp.alt_response(304, description="Not modified (anonymous reads carry an ETag).")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown article.")
    @blp.doc(operationId="listArticlePolls", security=READER_OR_STAFF_OPTIONAL)
    def get(self, article_id: str) -> Answer:
        """The polls attached to an article, as this caller may see them."""
        store = get_store()
        reader = current_reader(required=False, reading=True)
        staff = _staff()
        if articles.get(store, article_id) is None:
            raise errors.UnknownArticle()
        found = [poll_body(poll, staff) for poll in
                 polls.for_articles(store, [article_id], reader=reader)[article_id]]
        return {"polls": found}, _cache_headers(found, personal=bool(reader or staff))


_CSV_FIELDS = (
    "record", "time", "type", "option", "label", "votes", "percentage", "options",
    "previous", "reader",
)


def _cell(value: Any) -> str:
    """A spreadsheet must not run a label as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(row: dict[str, Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(row.get(name)) for name in _CSV_FIELDS])
    return buffer.getvalue()


@blp.route("/polls/<eid:poll_id>/export.csv")
class PollExport(MethodView):
    @blp.response(200, content_type="text/csv", description="Results, then every event.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown poll.")
    @blp.doc(operationId="exportPoll", security=EDITOR,
             responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
    @require_role("editor")
    def get(self, poll_id: str) -> Response:
        """Results per option (record `result`), then the vote events over time (`event`)."""
        return poll_export(poll_id, "api")


def poll_export(poll_id: str, via: str) -> Response:
    """The CSV of one poll (the API's and the dashboard's, `via`), in the audit log: its
    events name their readers."""
    store = get_store()
    poll = polls.get(store, poll_id)
    if poll is None:
        raise errors.UnknownPoll()
    audit.record(store, g.staff, "poll.export", via, {"poll": poll_id})
    view = poll_body(poll, staff=True)

    def rows() -> Iterator[str]:
        yield _csv_line({name: name for name in _CSV_FIELDS})
        results = view["results"] or {"counts": {}, "percentages": {}, "total": 0}
        now = store.now().isoformat()
        for option in view["options"]:
            yield _csv_line({
                "record": "result", "time": now, "option": option["id"],
                "label": option["label"], "votes": results["counts"].get(option["id"], 0),
                "percentage": results["percentages"].get(option["id"], 0),
            })
        yield _csv_line({
            "record": "result", "time": now, "option": "_voters",
            "label": "distinct voters", "votes": results["total"],
        })
        for entry_id, fields in polls.events(store, poll_id):
            event = events.decode(entry_id, fields)
            yield _csv_line({
                "record": "event", "time": _iso_ms(event["ts_ms"]),
                "type": event.get("type"), "options": event.get("options"),
                "previous": event.get("previous"), "reader": event.get("reader"),
            })

    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="poll-{poll_id}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _iso_ms(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
