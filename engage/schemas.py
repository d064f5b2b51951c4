"""marshmallow schemas for every request and response. No I/O here.

Request schemas reject unknown fields (marshmallow's default RAISE); response schemas
document what the API promises and feed the OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
ID_RE = re.compile(rf"^{ID_PATTERN}$")

Id = validate.Regexp(ID_RE, error="Ids are 1-128 characters of A-Z a-z 0-9 . _ : - "
                                  "starting with a letter or digit.")


def IdField(**kwargs: Any) -> fields.String:  # noqa: N802 - reads like a field class
    return fields.String(validate=Id, **kwargs)


def HttpUrl(**kwargs: Any) -> fields.Url:  # noqa: N802
    return fields.Url(schemes={"http", "https"}, validate=validate.Length(max=2048), **kwargs)


def UtcDateTime(**kwargs: Any) -> fields.AwareDateTime:  # noqa: N802
    """ISO 8601; a time without an offset is taken as UTC."""
    return fields.AwareDateTime(format="iso", default_timezone=UTC, **kwargs)


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


# -- articles ------------------------------------------------------------------------
class ArticleInSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    url = HttpUrl(required=True)
    section = fields.String(required=True, validate=validate.Length(min=1, max=64))
    published_at = UtcDateTime(required=True)
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        load_default=list,
        validate=validate.Length(max=20),
    )


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
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)
    reactions = fields.Nested(CountsSchema)


# -- reactions -----------------------------------------------------------------------
class ReactionInSchema(Schema):
    choice = fields.String(required=True, validate=validate.Length(min=1, max=32))
    reason = fields.String(allow_none=True, validate=validate.Length(min=1, max=32))

    @validates_schema
    def _known_choice(self, data: dict[str, Any], **_: Any) -> None:
        config = current_app.config
        if data["choice"] not in config["CHOICES"]:
            raise ValidationError(
                f"Must be one of: {', '.join(config['CHOICES'])}.", field_name="choice"
            )
        reason = data.get("reason")
        if reason is None:
            return
        if data["choice"] != config["REASON_CHOICE"]:
            raise ValidationError(
                f"Only a '{config['REASON_CHOICE']}' may carry a reason.", field_name="reason"
            )
        if reason not in config["REASONS"]:
            raise ValidationError(
                f"Must be one of: {', '.join(config['REASONS'])}.", field_name="reason"
            )


class ReactionsSchema(CountsSchema):
    article = fields.String(required=True)
    mine = fields.String(allow_none=True, required=True)
    reason = fields.String(allow_none=True)


class BatchQuerySchema(Schema):
    article = fields.List(
        IdField(), required=True, validate=validate.Length(min=1, max=100),
        metadata={"description": "Repeat for each article, up to 100."},
    )


class BatchReactionsSchema(Schema):
    articles = fields.Dict(keys=fields.String(), values=fields.Nested(CountsSchema), required=True)
    unknown_ = fields.List(fields.String(), required=True, data_key="unknown")


# -- ops -----------------------------------------------------------------------------
class HealthSchema(Schema):
    status = fields.String(required=True)

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
    section = fields.String(validate=validate.Length(min=1, max=64))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


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
    since = fields.String(allow_none=True, required=True)
    until = fields.String(allow_none=True, required=True)
    bucket = fields.String(allow_none=True, required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    articles = fields.List(fields.Nested(ArticleStatsSchema), required=True)


class SeriesQuerySchema(_RangeQuerySchema):
    bucket = fields.String(load_default="hour", validate=validate.OneOf(["hour", "day"]))


class SeriesPointSchema(Schema):
    start = fields.String(required=True)
    added = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    removed = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    poll_votes = fields.Integer(required=True)
    clicks = fields.Integer(required=True)
    impressions = fields.Integer(required=True)


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
