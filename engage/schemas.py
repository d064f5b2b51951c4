"""marshmallow schemas for every request and response. No I/O here.

Request schemas reject unknown fields (marshmallow's default RAISE); response schemas
document what the API promises and feed the OpenAPI document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from werkzeug.urls import iri_to_uri

from engage import fetching

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
# Deeper than any real page; Redis range indexes are 64-bit, so huge ones are refused here.
MAX_OFFSET = 1_000_000_000
ID_RE = re.compile(rf"^{ID_PATTERN}$")

Id = validate.Regexp(ID_RE, error="Ids are 1-128 characters of A-Z a-z 0-9 . _ : - "
                                  "starting with a letter or digit.")


def IdField(**kwargs: Any) -> fields.String:  # noqa: N802 - reads like a field class
    return fields.String(validate=Id, **kwargs)


class IdList(fields.List):
    """Ids, each checked with one match rather than through a field of its own: a batch
    names up to 100, and a field per id cost more than the rest of a cached batch read.
    The item field still documents them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(IdField(), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        bad = {n: [Id.error] for n, item in enumerate(value)
               if not (isinstance(item, str) and ID_RE.fullmatch(item))}
        if bad:
            raise ValidationError(bad)
        return value


# No stored text takes a control character: C0 (tab and newline too, as every text engage
# stores is one line: a title, a label, a name), DEL and C1. Unseen, they reach dashboard
# HTML, CSV exports, webhook bodies and log lines.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def no_control_characters(value: str) -> None:
    if CONTROL_CHARACTERS.search(value):
        raise ValidationError("Must not contain control characters.")


def Text(*, max: int, min: int | None = 1, **kwargs: Any) -> fields.String:  # noqa: N802
    """A line of text engage stores: up to max characters (at least min), none of them a
    control one."""
    return fields.String(
        validate=[validate.Length(min=min, max=max), no_control_characters], **kwargs)


# Each pattern ends in `$`, which OpenAPI's regex dialect reads like Python's `\Z` only
# without a trailing newline: no_control_characters refuses that one.
SITE_NAME: list[Callable[[Any], Any]] = [
    validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,39}$",
                    error="1-40 characters of a-z 0-9 -, starting with a letter or digit."),
    no_control_characters]
# A choice or reason is stored in counts and bucket fields and in a voter's "choice|reason":
# never a comma (lists of them are comma-joined for the scripts), a bar or a space.
CHOICE: list[Callable[[Any], Any]] = [
    validate.Regexp(r"^[^\s,|]{1,32}$",
                    error="1-32 characters, none of them a space, comma or bar."),
    no_control_characters]


def is_usable_url(value: str) -> bool:
    """A URL the server can send in a Location header and a client can connect to: its
    port, if any, is 1-65535 and it survives conversion to ASCII (werkzeug's, as the
    server does it when sending)."""
    try:
        port = urlsplit(value).port
        iri_to_uri(value)
    except ValueError:
        return False
    return port != 0


def _usable_url(value: str) -> None:
    if not is_usable_url(value):
        raise ValidationError("Not a valid URL.")


def HttpUrl(**kwargs: Any) -> fields.Url:  # noqa: N802
    return fields.Url(schemes={"http", "https"},
                      validate=[validate.Length(max=2048), no_control_characters, _usable_url],
                      **kwargs)


# Times engage can do arithmetic on (ranges, buckets, epoch milliseconds) without leaving
# what Python's datetime holds.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class _UtcDateTimeField(fields.AwareDateTime):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        when: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            in_range = EARLIEST <= when.astimezone(UTC) < LATEST
        except OverflowError:  # an offset that pushes it past year 1 or 9999
            in_range = False
        if not in_range:
            raise ValidationError("Must be a time between the years 1000 and 8999.")
        return when


def UtcDateTime(**kwargs: Any) -> fields.AwareDateTime:  # noqa: N802
    """ISO 8601; a time without an offset is taken as UTC."""
    return _UtcDateTimeField(format="iso", default_timezone=UTC, **kwargs)


# -- errors --------------------------------------------------------------------------
class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"example": "validation_failed"})
    message = fields.String(required=True)
    fields_ = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), data_key="fields"
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


# -- readers -------------------------------------------------------------------------
class ReaderSchema(Schema):
    reader = fields.String(required=True, metadata={"description": "Opaque signed token."})


class ReaderDataSchema(Schema):
    reactions = fields.List(fields.Dict(), required=True, metadata={
        "description": "{article, choice, reason, at, history: [{ts_ms, type, choice, "
                       "previous, reason}]} per article the reader voted on."})
    poll_answers = fields.List(fields.Dict(), required=True, metadata={
        "description": "{poll, options, at, history} per poll the reader answered."})
    clicks = fields.List(fields.Dict(), required=True, metadata={
        "description": "{link, article, at} per curated link the reader followed (the "
                       "last counted click), once they held a token."})


class ErasedSchema(Schema):
    erased = fields.Integer(required=True, metadata={
        "description": "Articles, polls and links that held something of the reader's."})


# -- articles ------------------------------------------------------------------------
class ArticleInSchema(Schema):
    title = Text(max=300, required=True)
    url = HttpUrl(required=True)
    section = Text(max=64, required=True)
    published_at = UtcDateTime(required=True)
    tags = fields.List(
        Text(max=64),
        load_default=list,
        validate=validate.Length(max=20),
    )
    site = fields.String(validate=SITE_NAME, metadata={
        "description": "The site it belongs to; left out, a new article is the default "
                       "site's and an existing one keeps its site."})
    reaction_set = fields.Nested("ReactionSetSchema", allow_none=True, metadata={
        "description": "Its own reaction set instead of its site's; null returns to the "
                       "site's, left out keeps what it has."})
    follow_page = fields.Boolean(metadata={
        "description": "Let the publisher's page (or feed) update this article when it is "
                       "verified; off, an editor's article is kept as written. Left out "
                       "keeps the choice (off for a new article)."})


class ArticleIdSchema(Schema):
    """The id of `PUT /articles/<id>` as a field, for the dashboard's register form."""

    id = IdField(required=True)


class CountsSchema(Schema):
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    total = fields.Integer(required=True)


class ArticleSchema(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    url = fields.String(required=True)
    section = fields.String(required=True)
    published_at = fields.String(required=True)
    tags = fields.List(fields.String(), required=True)
    site = fields.String(required=True)
    reaction_set = fields.Nested("ReactionSetSchema", required=True,
                                 metadata={"description": "What readers may choose."})
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)
    source = fields.String(validate=validate.OneOf(["editor", "page", "feed"]), metadata={
        "description": "Who registered it last: an editor, the publisher's page, or a feed "
                       "(docs/registration.md)."})
    verified_at = fields.String(allow_none=True, metadata={
        "description": "When its page or feed last confirmed it; null if never."})
    follow_page = fields.Boolean(metadata={
        "description": "Whether its page (or feed) may update an editor's article."})
    reactions = fields.Nested(CountsSchema)


# -- reactions -----------------------------------------------------------------------
class ReactionInSchema(Schema):
    """Whether the choice and reason are the article's is checked by the vote itself
    (store/reactions.py), which reads the article's reaction set anyway."""

    choice = fields.String(required=True, validate=CHOICE)
    reason = fields.String(allow_none=True, validate=CHOICE)


class ReactionsSchema(CountsSchema):
    article = fields.String(required=True)
    mine = fields.String(allow_none=True, required=True)
    reason = fields.String(allow_none=True)


class EmailLinksQuerySchema(Schema):
    days = fields.Integer(validate=validate.Range(min=1, max=365), metadata={
        "description": "Days the links stay valid (default EMAIL_LINK_DAYS)."})
    merge_tag = fields.String(
        load_default="{{recipient}}",
        validate=[validate.Length(min=1, max=64), no_control_characters,
                  validate.Regexp(r"^[^&#\s]*$", error="No spaces, & or #.")],
        metadata={"description": "What the mailing tool replaces with each recipient's "
                                 "id (docs/newsletters.md lists common tools' tags)."})


class EmailLinkSchema(Schema):
    choice = fields.String(required=True)
    url = fields.String(required=True)


class EmailLinksSchema(Schema):
    article = fields.String(required=True)
    expires_at = fields.String(required=True)
    merge_tag = fields.String(required=True)
    links = fields.List(fields.Nested(EmailLinkSchema), required=True, metadata={
        "description": "One link per choice, in display order, for the email template."})


class BatchQuerySchema(Schema):
    article = IdList(
        required=True, validate=validate.Length(min=1, max=100),
        metadata={"description": "Repeat for each article, up to 100."},
    )


class WidgetQuerySchema(BatchQuerySchema):
    url = fields.String(validate=validate.Length(max=2048), metadata={
        "description": "The page's canonical URL (its `<link rel=canonical>`, else its "
                       "address without query). An unknown article on a page of one of a "
                       "site's origins is queued for engage to verify from that page "
                       "(docs/registration.md); anything else about it is ignored."})


class BatchReactionsSchema(Schema):
    articles = fields.Dict(keys=fields.String(), values=fields.Nested(CountsSchema), required=True)
    unknown_ = fields.List(fields.String(), required=True, data_key="unknown")


# -- related links -------------------------------------------------------------------
MAX_LINKS = 20


class LinkInSchema(Schema):
    title = Text(max=300, required=True)
    url = HttpUrl(required=True)

    @validates_schema(pass_collection=True)
    def _at_most(self, data: Any, many: bool, **_: Any) -> None:
        if many and len(data) > MAX_LINKS:
            raise ValidationError(f"At most {MAX_LINKS} links.", field_name="_schema")


class LinkSchema(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    url = fields.String(required=True)
    href = fields.String(required=True, metadata={"description": "Counting redirect."})
    related = fields.Boolean(metadata={"description": "A filled-in related article."})


class LinksSchema(Schema):
    links = fields.List(fields.Nested(LinkSchema), required=True)


class ImpressionsInSchema(Schema):
    links = IdList(required=True, validate=validate.Length(min=1, max=MAX_LINKS))


class ImpressionsSchema(Schema):
    counted = fields.Integer(required=True)


# -- widget bundle -------------------------------------------------------------------
class WidgetArticleSchema(CountsSchema):
    reaction_set = fields.Nested("ReactionSetSchema", metadata={
        "description": "What readers may choose on this article, when not the bundle's "
                       "own `choices`, `reason_choice` and `reasons` (the default site's)."})
    links = fields.List(fields.Nested(LinkSchema), required=True)
    polls = fields.List(fields.Nested("PollSchema"), required=True)


class WidgetBundleSchema(Schema):
    choices = fields.List(fields.String(), required=True)
    reason_choice = fields.String(allow_none=True, required=True)
    reasons = fields.List(fields.String(), required=True)
    locale = fields.String(required=True)
    consent = fields.Boolean(required=True, metadata={
        "description": "Mint no reader token before the page's consent (READER_CONSENT)."})
    articles = fields.Dict(
        keys=fields.String(), values=fields.Nested(WidgetArticleSchema), required=True
    )
    unknown_ = fields.List(fields.String(), required=True, data_key="unknown")


class WidgetMineArticleSchema(CountsSchema):
    """Fresh counts too: the public bundle may be a few seconds old in a cache."""

    mine = fields.String(allow_none=True, required=True)
    reason = fields.String(allow_none=True)
    polls = fields.List(fields.Nested("PollSchema"), required=True)


class WidgetMineQuerySchema(Schema):
    article = IdList(
        required=True, validate=validate.Length(min=1, max=20),
        metadata={"description": "Repeat for each article on the page, up to 20."},
    )


class WidgetMineSchema(Schema):
    articles = fields.Dict(
        keys=fields.String(), values=fields.Nested(WidgetMineArticleSchema), required=True
    )


# -- editors' numbers ----------------------------------------------------------------
class _RangeQuerySchema(Schema):
    since = UtcDateTime(metadata={"description": "Start of the range (ISO 8601)."})
    until = UtcDateTime(metadata={"description": "End of the range (ISO 8601)."})

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("`since` must not be after `until`.", field_name="since")


class StatsQuerySchema(_RangeQuerySchema):
    sort = fields.String(
        load_default="approval", validate=validate.OneOf(["approval", "votes", "trending"])
    )
    section = Text(max=64)
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    q = Text(max=200, metadata={"description": (
        "Words the title, id or URL path must all contain (whole words, any case). With "
        "q, tag or a published range the matches are listed newest first (sort: newest).")})
    tag = Text(max=64)
    source = fields.String(validate=validate.OneOf(["editor", "page", "feed"]), metadata={
        "description": "Who registered the article: an editor, its page or a feed."})
    published_since = UtcDateTime(metadata={"description": "Published at or after (ISO 8601)."})
    published_until = UtcDateTime(metadata={"description": "Published at or before (ISO 8601)."})
    site = fields.String(validate=SITE_NAME, metadata={"description": (
        "The site whose figures these are (rankings, sections and totals are kept per "
        "site); default: the default site, or a limited editor's first site.")})


class TrendingSchema(Schema):
    score = fields.Float(required=True)
    last_hour = fields.Float(required=True)
    hourly_average = fields.Float(required=True)


class ArticleStatsSchema(CountsSchema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    section = fields.String(required=True)
    published_at = fields.String(allow_none=True)
    approval = fields.Float(allow_none=True, required=True)
    score = fields.Float(
        allow_none=True, required=True,
        metadata={"description": "Wilson lower bound (95%) of the approval share."},
    )
    trending = fields.Nested(TrendingSchema, required=True)
    clicks = fields.Integer(required=True)
    impressions = fields.Integer(required=True)
    ctr = fields.Float(allow_none=True, required=True)


class StatsPageSchema(Schema):
    sort = fields.String(required=True)
    site = fields.String(required=True, metadata={"description": "Whose figures these are."})
    since = fields.String(allow_none=True, required=True)
    until = fields.String(allow_none=True, required=True)
    bucket = fields.String(allow_none=True, required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    articles = fields.List(fields.Nested(ArticleStatsSchema), required=True)


class SeriesQuerySchema(_RangeQuerySchema):
    bucket = fields.String(load_default="hour", validate=validate.OneOf(["hour", "day"]))


class RefusedSchema(Schema):
    votes_throttled = fields.Integer(
        required=True,
        metadata={"description": "Reactions over an address budget (group or network)."})
    votes_duplicate = fields.Integer(
        required=True, metadata={"description": "Reactions repeating the reader's choice."})
    poll_votes_throttled = fields.Integer(
        required=True,
        metadata={"description": "Poll votes over an address budget (group or network)."})
    poll_votes_duplicate = fields.Integer(
        required=True, metadata={"description": "Poll votes repeating the reader's vote."})
    clicks_duplicate = fields.Integer(
        required=True, metadata={"description": "Clicks repeated within the click window."})
    clicks_throttled = fields.Integer(
        required=True,
        metadata={"description": "Clicks over a wider network's budget (/56, /48, /24)."})
    clicks_bot = fields.Integer(
        required=True, metadata={"description": "Link follows by non-human agents."})
    clicks_prefetch = fields.Integer(
        required=True, metadata={"description": "Link fetches ahead of a click (prefetch)."})
    impressions_over_cap = fields.Integer(
        required=True, metadata={"description": "Impressions over the per-address cap."})


class LinkPointSchema(Schema):
    clicks = fields.Integer(required=True)
    impressions = fields.Integer(required=True)


class SeriesPointSchema(Schema):
    start = fields.String(required=True)
    added = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    removed = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    poll_votes = fields.Integer(required=True)
    clicks = fields.Integer(required=True)
    impressions = fields.Integer(required=True)
    links = fields.Dict(keys=fields.String(), values=fields.Nested(LinkPointSchema),
                        required=True, metadata={
                            "description": "Clicks and impressions per related link id "
                                           "(links with neither are left out)."})
    channels = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                           metadata={"description": "Votes cast or moved, by the channel "
                                     "they came through: web, email, nojs, amp."})
    refused = fields.Nested(RefusedSchema, required=True, metadata={
        "description": "Activity not counted in this bucket: what an editor sees when an "
                       "article is being stuffed."})


class SeriesSchema(Schema):
    article = fields.String(required=True)
    bucket = fields.String(required=True)
    since = fields.String(required=True)
    until = fields.String(required=True)
    choices = fields.List(fields.String(), required=True)
    points = fields.List(fields.Nested(SeriesPointSchema), required=True)


EVENT_TYPE = validate.Regexp(r"^[a-z]+(\.[a-z]+)?$", error="An event type or family.")


class ExportQuerySchema(_RangeQuerySchema):
    format = fields.String(load_default="ndjson", validate=validate.OneOf(["csv", "ndjson"]))
    type = fields.List(
        fields.String(validate=EVENT_TYPE), load_default=list,
        metadata={"description": "Repeatable; an exact type or a family like `reaction`."},
    )
    article = IdField()


class SectionsQuerySchema(_RangeQuerySchema):
    site = fields.String(validate=SITE_NAME, metadata={"description": (
        "The site whose figures these are (rankings, sections and totals are kept per "
        "site); default: the default site, or a limited editor's first site.")})


class SectionStatsSchema(CountsSchema):
    section = fields.String(required=True)
    articles = fields.Integer(required=True)
    approval = fields.Float(allow_none=True, required=True)
    score = fields.Float(allow_none=True, required=True)
    clicks = fields.Integer(required=True)
    impressions = fields.Integer(required=True)
    ctr = fields.Float(allow_none=True, required=True)
    last_hour = fields.Float(required=True)


class SectionsSchema(Schema):
    site = fields.String(required=True, metadata={"description": "Whose figures these are."})
    since = fields.String(allow_none=True, required=True)
    until = fields.String(allow_none=True, required=True)
    bucket = fields.String(allow_none=True, required=True)
    sections = fields.List(fields.Nested(SectionStatsSchema), required=True)


# -- polls ---------------------------------------------------------------------------
POLL_VISIBILITY = validate.OneOf(["always", "after_vote", "after_close"])
POLL_STATUS = validate.OneOf(["open", "closed"])


def _blank(value: str) -> bool:
    return not value.strip()


def _not_blank(value: str) -> None:
    if _blank(value):
        raise ValidationError("Must not be blank.")


def _in_future(when: datetime) -> None:
    """closes_at must lie ahead; compared in whole milliseconds, as the store keeps it."""
    ms = timedelta(milliseconds=1)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    if (when - epoch) // ms <= (datetime.now(UTC) - epoch) // ms:
        raise ValidationError("Must be in the future.")


class PollInSchema(Schema):
    id = IdField(metadata={"description": "Optional chosen id (seeds); 409 if taken."})
    question = Text(max=300, required=True)
    options = fields.List(
        Text(max=200),
        required=True, validate=validate.Length(min=2, max=10),
        metadata={"description": "2-10 distinct labels; ids o1, o2, ... follow this order."},
    )
    article = IdField(load_default=None, allow_none=True)
    multiple = fields.Boolean(load_default=False)
    max_choices = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1, max=10),
        metadata={"description": "Only with multiple; defaults to the number of options."},
    )
    closes_at = UtcDateTime(load_default=None, allow_none=True, validate=_in_future)
    results = fields.String(
        load_default="always", validate=POLL_VISIBILITY,
        metadata={"description": "When readers see results: always, after_vote, after_close."},
    )
    min_votes = fields.Integer(
        load_default=None, allow_none=True, strict=True,
        validate=validate.Range(min=0, max=1_000_000),
        metadata={"description": "Voters needed before readers see any result."},
    )

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if _blank(data["question"]):
            raise ValidationError("Must not be blank.", field_name="question")
        labels = [label.strip() for label in data["options"]]
        if any(not label for label in labels):
            raise ValidationError("Option labels must not be blank.", field_name="options")
        if len({label.casefold() for label in labels}) != len(labels):
            raise ValidationError("Option labels must be distinct.", field_name="options")
        max_choices = data.get("max_choices")
        if max_choices is not None:
            if not data.get("multiple"):
                raise ValidationError(
                    "Only a multiple-choice poll takes max_choices.", field_name="max_choices"
                )
            if max_choices > len(labels):
                raise ValidationError(
                    "Cannot exceed the number of options.", field_name="max_choices"
                )

    @post_load
    def _strip(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["question"] = data["question"].strip()
        data["options"] = [label.strip() for label in data["options"]]
        return data


class PollPatchSchema(Schema):
    status = fields.String(validate=POLL_STATUS)
    closes_at = UtcDateTime(allow_none=True, validate=_in_future,
                            metadata={"description": "null removes it."})
    question = Text(max=300)
    results = fields.String(validate=POLL_VISIBILITY)
    min_votes = fields.Integer(
        allow_none=True, strict=True, validate=validate.Range(min=0, max=1_000_000)
    )

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("Send at least one field to change.", field_name="_schema")
        if "question" in data and _blank(data["question"]):
            raise ValidationError("Must not be blank.", field_name="question")

    @post_load
    def _strip(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "question" in data:
            data["question"] = data["question"].strip()
        return data


class PollVoteInSchema(Schema):
    options = fields.List(
        fields.String(validate=validate.Length(min=1, max=16)),
        required=True, validate=validate.Length(min=1, max=10),
        metadata={"description": "Option ids; one on a single-choice poll."},
    )

    @validates_schema
    def _distinct(self, data: dict[str, Any], **_: Any) -> None:
        if len(set(data["options"])) != len(data["options"]):
            raise ValidationError("An option is listed twice.", field_name="options")


class PollOptionSchema(Schema):
    id = fields.String(required=True)
    label = fields.String(required=True)


class PollResultsSchema(Schema):
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    percentages = fields.Dict(
        keys=fields.String(), values=fields.Integer(), required=True,
        metadata={"description": "Share of all ticks, largest remainder, adds up to 100."},
    )
    total = fields.Integer(required=True, metadata={"description": "Distinct voters."})
    ticks = fields.Integer(required=True, metadata={"description": "Options ticked in all."})


class PollSchema(Schema):
    id = fields.String(required=True)
    question = fields.String(required=True)
    options = fields.List(fields.Nested(PollOptionSchema), required=True)
    article = fields.String(allow_none=True, required=True)
    multiple = fields.Boolean(required=True)
    max_choices = fields.Integer(required=True)
    closes_at = fields.String(allow_none=True, required=True)
    results_visibility = fields.String(required=True, validate=POLL_VISIBILITY)
    min_votes = fields.Integer(allow_none=True, required=True)
    status = fields.String(required=True, validate=POLL_STATUS)
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)
    results = fields.Nested(
        PollResultsSchema, allow_none=True, required=True,
        metadata={"description": "null while the visibility hides results from the caller."},
    )
    mine = fields.List(fields.String(), allow_none=True, required=True)


class ArticlePollsSchema(Schema):
    """An article's polls, all of them (an article has few)."""

    polls = fields.List(fields.Nested(PollSchema), required=True)


class PollListSchema(ArticlePollsSchema):
    """A page of every poll, newest first."""

    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    next_offset = fields.Integer(
        allow_none=True, required=True,
        metadata={"description": "The offset of the next page; null on the last page."},
    )


class PollListQuerySchema(Schema):
    status = fields.String(validate=POLL_STATUS)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))


# -- sites ---------------------------------------------------------------------------
MAX_CHOICES = 8


class ReactionSetSchema(Schema):
    """The choices readers pick from, in display order, and the reasons one of them takes."""

    choices = fields.List(fields.String(validate=CHOICE), required=True,
                          validate=validate.Length(min=2, max=MAX_CHOICES))
    reason_choice = fields.String(allow_none=True, load_default=None, validate=CHOICE)
    reasons = fields.List(fields.String(validate=CHOICE), load_default=list,
                          validate=validate.Length(max=20))

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if len(set(data["choices"])) != len(data["choices"]):
            raise ValidationError("Each choice once.", field_name="choices")
        if data.get("reason_choice") not in (None, *data["choices"]):
            raise ValidationError("Must be one of the choices, or null.",
                                  field_name="reason_choice")


FEEDS_MAX = 10  # feeds per site: each is polled every FEED_POLL_SECONDS


class SiteChangesSchema(Schema):
    """What `updateSite` may change; `createSite` adds the name."""

    origins = fields.List(fields.String(validate=[validate.Regexp(
        r"^https?://[^/?#@\s]+$", error="An origin: http(s)://host[:port], no path."),
        no_control_characters]),
        validate=validate.Length(max=50))
    locale = fields.String(validate=[validate.Regexp(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
                                                     error="A language tag such as en or fr-CA."),
                                     no_control_characters])
    reactions = fields.Nested(ReactionSetSchema)
    links_shown = fields.Integer(validate=validate.Range(min=0, max=MAX_LINKS))
    cache_max_age = fields.Integer(validate=validate.Range(min=0, max=3600))
    cache_stale = fields.Integer(validate=validate.Range(min=0, max=86400))
    digest_to = fields.List(fields.Email(validate=validate.Length(max=254)),
                            validate=validate.Length(max=20), metadata={
        "description": "Who gets this site's daily digest (docs/alerts.md); none: no digest. "
                       "The default site's falls back to ENGAGE_DIGEST_TO."})
    feeds = fields.List(HttpUrl(), validate=validate.Length(max=FEEDS_MAX), metadata={
        "description": "News sitemaps (or sitemap indexes), RSS and Atom feeds on the site's "
                       "origins that the worker polls to register and update the site's "
                       "articles (docs/registration.md#from-feeds); none: no polling."})

    @validates_schema
    def _feeds_on_origins(self, data: dict[str, Any], **_: Any) -> None:
        # Only when both are in the body: a change of one alone is checked when polled
        # (a feed off the origins is refused there and listed as unverified).
        if "feeds" in data and "origins" in data:
            allowed = {fetching.origin_of(o) for o in data["origins"]}
            if any(fetching.origin_of(url) not in allowed for url in data["feeds"]):
                raise ValidationError("Each feed must be on one of the site's origins.",
                                      field_name="feeds")


class SiteInSchema(SiteChangesSchema):
    name = fields.String(required=True, validate=SITE_NAME)


class SiteSchema(SiteInSchema):
    """A site; values not given when it was made are the default site's settings."""


class SitesSchema(Schema):
    sites = fields.List(fields.Nested(SiteSchema), required=True)


# -- API tokens (dashboard admin pages; the CLI makes them too) ------------------------
TOKEN_ROLES = ("editor", "admin")


class TokenInSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(TOKEN_ROLES))
    # A token without a name cannot be told apart in the list when it is to be revoked.
    name = fields.String(required=True, validate=[
        validate.Length(max=100), no_control_characters, _not_blank])
    expires_days = fields.Integer(load_default=None, allow_none=True,
                                  validate=validate.Range(min=1, max=3650))

    @post_load
    def _strip(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["name"] = data["name"].strip()
        return data


# -- webhooks ------------------------------------------------------------------------
WEBHOOK_EVENT_TYPES = (
    "reaction.vote", "reaction.change", "reaction.withdraw",
    "article.created", "article.updated",
    "link.click", "link.impression",
    "poll.created", "poll.vote", "poll.change", "poll.withdraw",
    "poll.closed", "poll.opened", "poll.deleted",
    "poll.updated",
    "alert.fired", "alert.resolved",
)
WEBHOOK_EVENT_PATTERNS = (
    "*",
    *WEBHOOK_EVENT_TYPES,
    *dict.fromkeys(t.split(".", 1)[0] + ".*" for t in WEBHOOK_EVENT_TYPES),
)


class WebhookInSchema(Schema):
    url = HttpUrl(required=True)
    events = fields.List(
        fields.String(validate=validate.OneOf(
            WEBHOOK_EVENT_PATTERNS, error="Unknown event type; use a type, 'family.*' or '*'."
        )),
        required=True,
        validate=validate.Length(min=1, max=len(WEBHOOK_EVENT_PATTERNS)),
        metadata={"description": "Event types, families like `reaction.*`, or `*`."},
    )
    secret = Text(
        min=16, max=256, required=True, load_only=True,
        metadata={"description": "Signs each delivery (HMAC-SHA256); never shown again."},
    )
    site = fields.String(load_default=None, allow_none=True, validate=SITE_NAME, metadata={
        "description": "Only this site's events (its articles' and their polls'; a poll of "
                       "no article is the default site's); null or left out: every site's."})


WEBHOOK_OUTCOMES = ("delivered", "failed", "dead")


class WebhookAttemptSchema(Schema):
    at = fields.String(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(WEBHOOK_OUTCOMES), metadata={
        "description": "`failed` is retried later; `dead`: given up after the last retry."})
    error = fields.String(allow_none=True, required=True)
    attempts = fields.Integer(required=True)
    delivery = fields.String(required=True, metadata={"description": "The idempotency id."})


class WebhookSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    site = fields.String(allow_none=True, required=True,
                         metadata={"description": "The one site whose events it receives."})
    created_at = fields.String(required=True)
    last_attempt = fields.Nested(WebhookAttemptSchema, allow_none=True, dump_default=None,
                                 metadata={"description": "The newest delivery attempt."})


class WebhookListSchema(Schema):
    webhooks = fields.List(fields.Nested(WebhookSchema), required=True)


class WebhookTestSchema(Schema):
    delivery = fields.String(required=True, metadata={
        "description": "The test delivery's idempotency id, as the receiver will see it."})


class DeadLetterSchema(Schema):
    id = fields.String(required=True, metadata={"description": "The dead-letter entry."})
    at = fields.String(required=True)
    delivery = fields.String(required=True)
    webhook = fields.String(required=True)
    attempts = fields.Integer(required=True)
    error = fields.String(required=True)
    body = fields.String(required=True, metadata={"description": "The exact body sent."})


class DeadLetterListSchema(Schema):
    dead_letters = fields.List(fields.Nested(DeadLetterSchema), required=True)


class AuditEntrySchema(Schema):
    id = fields.String(required=True, metadata={"description": "The audit log entry."})
    at = fields.String(required=True)
    action = fields.String(required=True, metadata={
        "description": "What was done: events.export or poll.export."})
    via = fields.String(required=True, metadata={"description": "api or dashboard."})
    staff = fields.String(required=True, metadata={"description": "The staff member's id."})
    name = fields.String(required=True)
    role = fields.String(required=True)
    detail = fields.String(required=True, metadata={
        "description": "The export's query, as JSON."})


class AuditLogSchema(Schema):
    entries = fields.List(fields.Nested(AuditEntrySchema), required=True)


# -- alert rules (engage/alerts.py) ---------------------------------------------------------
ALERT_KINDS = ("reason_spike", "approval_drop", "surge", "refused", "poll_milestone")
# What each kind needs besides its threshold; the rest must be left out (null).
ALERT_NEEDS = {
    "reason_spike": ("reason",),
    "approval_drop": ("points",),
    "surge": ("factor",),
    "refused": (),
    "poll_milestone": (),
}
_ALERT_OPTIONAL = ("reason", "points", "factor", "poll", "on_close")


class AlertRuleInSchema(Schema):
    name = Text(max=100, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(
        ALERT_KINDS, error="Must be one of: " + ", ".join(ALERT_KINDS) + "."))
    site = fields.String(
        load_default=None, allow_none=True, validate=SITE_NAME,
        metadata={"description": "Which site the rule watches (its articles and their "
                                 "polls); null watches every site, for staff who see every "
                                 "site."})
    article = IdField(load_default=None, allow_none=True,
                      metadata={"description": "Watch only this article; null: every one."})
    poll = IdField(load_default=None, allow_none=True,
                   metadata={"description": "poll_milestone: only this poll; null: every one."})
    threshold = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "reason_spike: reasons in the window; approval_drop: votes "
                                 "the article has at least; surge: votes in the last hour at "
                                 "least; refused: refused actions in the window; "
                                 "poll_milestone: answers."})
    window_hours = fields.Integer(
        load_default=1, strict=True, validate=validate.Range(min=1, max=168),
        metadata={"description": "Whole UTC hours counted: the current one and those "
                                 "before it."})
    reason = fields.String(load_default=None, allow_none=True,
                           metadata={"description": "reason_spike: the reason counted."})
    points = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=100),
        metadata={"description": "approval_drop: percentage points lost in the window."})
    factor = fields.Float(
        load_default=None, allow_none=True,
        validate=validate.Range(min=1, max=10_000, min_inclusive=False),
        metadata={"description": "surge: trending score (last hour against the hourly "
                                 "average) at least."})
    on_close = fields.Boolean(
        load_default=False,
        metadata={"description": "poll_milestone: also tell when the poll closes."})
    email_to = fields.List(fields.Email(validate=validate.Length(max=254)),
                           load_default=list, validate=validate.Length(max=10))
    email_from = fields.Email(load_default=None, allow_none=True,
                              validate=validate.Length(max=254),
                              metadata={"description": "Sender; null: ENGAGE_MAIL_FROM."})
    webhook = fields.Boolean(
        load_default=False,
        metadata={"description": "Send `alert.fired` / `alert.resolved` to the webhooks that "
                                 "take them."})
    slack_url = HttpUrl(load_default=None, allow_none=True,
                        metadata={"description": "Slack-compatible incoming webhook."})
    enabled = fields.Boolean(load_default=True)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if _blank(data["name"]):
            raise ValidationError("Must not be blank.", field_name="name")
        kind = data["kind"]
        needs = ALERT_NEEDS[kind]
        errors: dict[str, list[str]] = {}
        for name in needs:
            if data.get(name) is None:
                errors[name] = [f"Required for a {kind.replace('_', ' ')} rule."]
        for name in _ALERT_OPTIONAL:
            wanted = name in needs or (kind == "poll_milestone" and name in ("poll", "on_close"))
            if not wanted and data.get(name) not in (None, False):
                errors[name] = [f"Not used by a {kind.replace('_', ' ')} rule; leave it out."]
        if kind == "poll_milestone" and data["article"] is not None:
            errors["article"] = ["A poll milestone names a poll, not an article."]
        reasons = current_app.config["REASONS"]
        if data.get("reason") is not None and data["reason"] not in reasons:
            errors["reason"] = [f"Must be one of: {', '.join(reasons)}."]
        if not (data["email_to"] or data["webhook"] or data["slack_url"]):
            errors["_schema"] = ["Choose where it goes: email, webhooks or a Slack address."]
        if errors:
            raise ValidationError(errors)


class AlertRuleSchema(AlertRuleInSchema):
    id = fields.String(required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class AlertRuleListSchema(Schema):
    rules = fields.List(fields.Nested(AlertRuleSchema), required=True)
