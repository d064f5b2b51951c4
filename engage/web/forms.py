"""What the editors' form pages share: the dashboard's guard, and one set of rules.

A form is read into the same dict the API takes as JSON and loaded through the API's
own schema (engage/schemas.py); the schema's messages are shown next to the fields
they name. Nothing here knows a rule of its own about what is valid.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, render_template
from marshmallow import Schema, ValidationError

from engage import errors, schemas
from engage.web import dashboard

FORM_ERROR = "_form"  # messages about the whole form, shown above it

Errors = dict[str, list[str]]


def staff_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint under /dashboard with the dashboard's sign-in guard and CSRF check,
    its error page, no-store answers and template helpers."""
    bp = Blueprint(name, import_name, url_prefix="/dashboard")
    bp.before_request(dashboard._guard)
    bp.after_request(dashboard._private)
    bp.context_processor(dashboard._template_helpers)
    bp.register_error_handler(404, dashboard._not_found)
    bp.register_error_handler(errors.Forbidden, dashboard._forbidden)
    return bp


def render(template: str, status: int, **context: Any) -> tuple[str, int]:
    """A form page. What was posted (`form`, the links' `rows`) is shown back as sent but
    for control characters, shown as U+FFFD: the schema refused them, and raw they would
    go into the page."""
    for name in ("form", "rows"):
        if name in context:
            context[name] = _shown(context[name])
    return render_template(template, **context), status


def _shown(value: Any) -> Any:
    if isinstance(value, str):
        return schemas.CONTROL_CHARACTERS.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: _shown(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_shown(inner) for inner in value]
    return value


def load(schema: Schema, data: Any) -> tuple[Any, Errors]:
    """The schema's result, or None and its messages per form field."""
    try:
        return schema.load(data), {}
    except ValidationError as exc:
        return None, flatten(exc.messages)


def flatten(messages: Any, field: str = FORM_ERROR) -> Errors:
    """marshmallow's nested messages as {field: [message, ...]}.

    A list item's messages stay with the list's field, numbered from 1 as people count
    ("Option 2: ..." for `options`); `_schema` messages belong to the whole form.
    """
    out: Errors = {}
    if isinstance(messages, dict):
        item = field.removesuffix("s").replace("_", " ").capitalize()
        for key, value in messages.items():
            if isinstance(key, int):
                for name, found in flatten(value, field).items():
                    out.setdefault(name, []).extend(f"{item} {key + 1}: {m}" for m in found)
                continue
            name = FORM_ERROR if key == "_schema" else str(key)
            for sub, found in flatten(value, name).items():
                out.setdefault(sub, []).extend(found)
    elif isinstance(messages, list):
        for item in messages:
            for sub, found in flatten(item, field).items():
                out.setdefault(sub, []).extend(found)
    else:
        out.setdefault(field, []).append(str(messages))
    return out


def number(value: str | None) -> Any:
    """A form's number as the JSON number the API takes; text the schema will refuse."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def listed(value: str | None) -> list[str]:
    """A list typed with commas, spaces or lines between its items (no choice, reason or
    origin holds one)."""
    return [item for item in re.split(r"[,\s]+", value or "") if item]


def reaction_set(form: Any) -> dict[str, Any] | None:
    """The form's `choices`, `reason_choice` and `reasons` as the API's reaction set;
    None when no choice is typed."""
    choices = listed(form.get("choices"))
    if not choices:
        return None
    return {"choices": choices, "reason_choice": form.get("reason_choice", "").strip() or None,
            "reasons": listed(form.get("reasons"))}


def shown_set(reaction_set: dict[str, Any]) -> dict[str, str]:
    """A reaction set as the form's fields."""
    return {"choices": ", ".join(reaction_set["choices"]),
            "reason_choice": reaction_set["reason_choice"] or "",
            "reasons": ", ".join(reaction_set["reasons"])}


def local_time(value: str | None, tz_name: str | None) -> Any:
    """A datetime-local field in the editor's zone as the ISO 8601 time the API takes.

    `tz_name` is the editor's time zone as the page's script reported it; without a known
    zone (no script ran) the time is taken as UTC, which the form says.
    Text that is not a time goes through as it is, for the schema to refuse.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text
    if when.tzinfo is None:
        try:
            zone: tzinfo = ZoneInfo(tz_name) if tz_name else UTC
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        when = when.replace(tzinfo=zone)
    return when.isoformat()


def utc_label(iso: Any) -> str:
    """"2026-12-01 17:00 UTC" for a time the form produced; "" when it is not one."""
    if not isinstance(iso, str):
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError):  # not a time; or one its offset moves past year 1-9999
        return ""


def local_input(iso: str | None) -> str:
    """A stored UTC time as a datetime-local value (in UTC; the page's script shows it
    in the editor's zone)."""
    if not iso:
        return ""
    when = datetime.fromisoformat(iso).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M")
