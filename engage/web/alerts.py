"""The alert rules page: list, create, edit and delete rules, for editors and admins.

The form is loaded through the API's schema (`AlertRuleInSchema`) and stored through
the same store function the API calls, so it obeys the API's rules and messages.
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, redirect, request, url_for

from engage import destinations, schemas
from engage.errors import UnknownAlertRule
from engage.store import alerts as alert_store
from engage.store import get_store
from engage.web import dashboard, forms
from engage.web.forms import Errors

bp = forms.staff_blueprint("alert_rules", __name__)

KINDS = (
    ("reason_spike", "Reason spike: many \u201cno\u201d votes giving one reason"),
    ("approval_drop", "Approval drop"),
    ("surge", "Surge: trending above a factor"),
    ("refused", "Refused activity (an attack?)"),
    ("poll_milestone", "Poll milestone: answers, or closed"),
)
BLANK = {"name": "", "kind": "reason_spike", "article": "", "poll": "", "threshold": "5",
         "window_hours": "1", "reason": "", "points": "", "factor": "", "on_close": False,
         "email_to": "", "email_from": "", "webhook": False, "slack_url": "", "enabled": True}


def _unknown() -> Any:
    return dashboard.refuse(UnknownAlertRule.code, UnknownAlertRule.error_code,
                            UnknownAlertRule.message)


def _text(name: str) -> str | None:
    return request.form.get(name, "").strip() or None


def _input() -> tuple[dict[str, Any], dict[str, Any]]:
    """The form as the JSON body of POST /api/v1/alert-rules, and as it was typed."""
    shown: dict[str, Any] = {name: request.form.get(name, "") for name in BLANK if name not in
                             ("on_close", "webhook", "enabled")}
    shown.update({name: name in request.form for name in ("on_close", "webhook", "enabled")})
    data = {
        "name": request.form.get("name", ""), "kind": request.form.get("kind", ""),
        "article": _text("article"), "poll": _text("poll"),
        "threshold": forms.number(request.form.get("threshold")),
        "window_hours": forms.number(request.form.get("window_hours")),
        "reason": _text("reason"), "points": _text("points"), "factor": _text("factor"),
        "on_close": shown["on_close"], "webhook": shown["webhook"],
        "email_to": [a for a in re.split(r"[\s,;]+", request.form.get("email_to", "")) if a],
        "email_from": _text("email_from"), "slack_url": _text("slack_url"),
        "enabled": shown["enabled"],
    }
    if data["window_hours"] is None:  # left blank: the API's default, as if not sent
        data["window_hours"] = 1
    return data, shown


def _shown(rule: dict[str, Any]) -> dict[str, Any]:
    return {**BLANK, **{k: ("" if v is None else v) for k, v in rule.items()},
            "email_to": ", ".join(rule.get("email_to") or [])}


def _page(form: dict[str, Any], errors: Errors, status: int = 200, editing: str | None = None,
          notice: str | None = None) -> Any:
    return forms.render(
        "dashboard/alerts.html", status, page="alerts",
        rules=alert_store.list_rules(get_store()), kinds=KINDS,
        reasons=current_app.config["REASONS"], form=form, errors=errors, editing=editing,
        notice=notice or request.args.get("notice"),
    )


def _save(rule_id: str | None) -> Any:
    data, shown = _input()
    loaded, errors = forms.load(schemas.AlertRuleInSchema(), data)
    store = get_store()
    if not errors and (why := destinations.refused(loaded["slack_url"], store.config)):
        errors = {"slack_url": [why]}
    if errors:
        return _page(shown, errors, 422, editing=rule_id)
    record = alert_store.save_rule(store, loaded, rule_id)
    if record is None:
        return _unknown()
    named = f"Rule \u201c{record['name']}\u201d"
    if rule_id is None:
        return _page(_shown({}), {}, 201, notice=f"{named} created.")
    return redirect(url_for("alert_rules.rule_list", notice=f"{named} saved."))


@bp.route("/alerts", methods=["GET", "POST"])
def rule_list() -> Any:
    if request.method == "GET":
        return _page(_shown({}), {})
    return _save(None)


@bp.route("/alerts/<eid:rule_id>", methods=["GET", "POST"])
def rule_edit(rule_id: str) -> Any:
    if request.method == "POST":
        return _save(rule_id)
    rule = alert_store.get_rule(get_store(), rule_id)
    if rule is None:
        return _unknown()
    return _page(_shown(rule), {}, editing=rule_id)


@bp.post("/alerts/<eid:rule_id>/delete")
def rule_delete(rule_id: str) -> Any:
    if not alert_store.delete_rule(get_store(), rule_id):
        return _unknown()
    return redirect(url_for("alert_rules.rule_list", notice="Rule deleted."))
