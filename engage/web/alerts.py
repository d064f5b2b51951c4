"""The alert rules page: list, create, edit and delete rules, for editors and admins.

The form is loaded through the API's schema (`AlertRuleInSchema`) and stored through
the same store function the API calls, so it obeys the API's rules and messages.
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, redirect, request, url_for

from engage import alerts, destinations, schemas
from engage.errors import Forbidden, UnknownAlertRule, ValidationFailed
from engage.identity import site_scope
from engage.store import alerts as alert_store
from engage.store import get_store, sites
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
BLANK = {"name": "", "kind": "reason_spike", "site": "", "article": "", "poll": "",
         "threshold": "5", "window_hours": "1", "reason": "", "points": "", "factor": "",
         "on_close": False,
         "email_to": "", "email_from": "", "webhook": False, "slack_url": "", "enabled": True}


def _unknown() -> Any:
    return dashboard.refuse(UnknownAlertRule.code, UnknownAlertRule.error_code,
                            UnknownAlertRule.message)


def _refused(rule_id: str) -> Any:
    """The page for an unknown rule, or another site's for staff limited to sites; None
    when the caller may change it."""
    rule = alert_store.get_rule(get_store(), rule_id)
    if rule is None:
        return _unknown()
    if not alerts.visible_rules([rule], site_scope()):
        return dashboard.refuse(403, "forbidden", "This rule watches a site you do not edit.")
    return None


def _text(name: str) -> str | None:
    return request.form.get(name, "").strip() or None


def _input() -> tuple[dict[str, Any], dict[str, Any]]:
    """The form as the JSON body of POST /api/v1/alert-rules, and as it was typed."""
    shown: dict[str, Any] = {name: request.form.get(name, "") for name in BLANK if name not in
                             ("on_close", "webhook", "enabled")}
    shown.update({name: name in request.form for name in ("on_close", "webhook", "enabled")})
    data = {
        "name": request.form.get("name", ""), "kind": request.form.get("kind", ""),
        "site": _text("site"), "article": _text("article"), "poll": _text("poll"),
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
    store, scope = get_store(), site_scope()
    return forms.render(
        "dashboard/alerts.html", status, page="alerts",
        rules=alerts.visible_rules(alert_store.list_rules(store), scope), kinds=KINDS,
        sites=[name for name in sites.listing(store) if scope is None or name in scope],
        every_site=scope is None,
        reasons=current_app.config["REASONS"], form=form, errors=errors, editing=editing,
        notice=notice or request.args.get("notice"),
    )


def _save(rule_id: str | None) -> Any:
    data, shown = _input()
    loaded, errors = forms.load(schemas.AlertRuleInSchema(), data)
    store = get_store()
    if not errors and (why := destinations.refused(loaded["slack_url"], store.config)):
        errors = {"slack_url": [why]}
    if not errors:
        try:
            alerts.check_rule_site(store, loaded, site_scope())
        except ValidationFailed as exc:
            errors = exc.fields or {}
        except Forbidden as exc:
            return dashboard.refuse(exc.code, exc.error_code, exc.message)
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
    if refusal := _refused(rule_id):
        return refusal
    if request.method == "POST":
        return _save(rule_id)
    return _page(_shown(alert_store.get_rule(get_store(), rule_id) or {}), {}, editing=rule_id)


@bp.post("/alerts/<eid:rule_id>/delete")
def rule_delete(rule_id: str) -> Any:
    if refusal := _refused(rule_id):
        return refusal
    if not alert_store.delete_rule(get_store(), rule_id):
        return _unknown()
    return redirect(url_for("alert_rules.rule_list", notice="Rule deleted."))
