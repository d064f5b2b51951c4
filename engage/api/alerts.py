"""Alert rules: what the worker watches and tells editors about (docs/alerts.md).

Editors manage them (admins too): a rule sends article titles and figures editors can
read anyway, to addresses they choose; a Slack address passes the webhooks' checks.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from engage import alerts, destinations, errors, schemas
from engage.api import Blueprint
from engage.api.spec import EDITOR
from engage.identity import require_role, site_scope
from engage.store import alerts as alert_store
from engage.store import get_store

blp = Blueprint("alerts", __name__, description="Alert rules (editors).")

_AUTH = {401: "No or invalid token.", 403: "Not an editor or admin."}


def _checked(data: dict[str, Any]) -> dict[str, Any]:
    store = get_store()
    if why := destinations.refused(data["slack_url"], store.config):
        raise errors.ValidationFailed(fields={"slack_url": [why]})
    alerts.check_rule_site(store, data, site_scope())
    return data


def _own(rule_id: str) -> None:
    """Unknown rule: 404; another site's, for staff limited to sites: 403."""
    rule = alert_store.get_rule(get_store(), rule_id)
    if rule is None:
        raise errors.UnknownAlertRule()
    if not alerts.visible_rules([rule], site_scope()):
        raise errors.Forbidden("This rule watches a site you do not edit.")


@blp.route("/alert-rules")
class AlertRules(MethodView):
    @blp.response(200, schemas.AlertRuleListSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description=_AUTH[401])
    @blp.alt_response(403, schema=schemas.ErrorSchema, description=_AUTH[403])
    @blp.doc(operationId="listAlertRules", security=EDITOR)
    @require_role("editor")
    def get(self) -> dict[str, Any]:
        """Every alert rule, oldest first (for staff limited to sites, those of their sites)."""
        return {"rules": alerts.visible_rules(alert_store.list_rules(get_store()), site_scope())}

    @blp.arguments(schemas.AlertRuleInSchema())
    @blp.response(201, schemas.AlertRuleSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description=_AUTH[401])
    @blp.alt_response(403, schema=schemas.ErrorSchema, description=_AUTH[403])
    @blp.alt_response(422, schema=schemas.ErrorSchema,
                      description="Invalid fields, or a Slack address that is not public.")
    @blp.doc(operationId="createAlertRule", security=EDITOR)
    @require_role("editor")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Watch for a reason spike, an approval drop, a surge, refused activity or a
        poll milestone, and say so by email, webhooks (`alert.fired`, `alert.resolved`)
        or a Slack-compatible incoming webhook."""
        return alert_store.save_rule(get_store(), _checked(data)) or {}


@blp.route("/alert-rules/<eid:rule_id>")
class AlertRule(MethodView):
    @blp.arguments(schemas.AlertRuleInSchema())
    @blp.response(200, schemas.AlertRuleSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description=_AUTH[401])
    @blp.alt_response(403, schema=schemas.ErrorSchema, description=_AUTH[403])
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown rule.")
    @blp.alt_response(422, schema=schemas.ErrorSchema,
                      description="Invalid fields, or a Slack address that is not public.")
    @blp.doc(operationId="updateAlertRule", security=EDITOR)
    @require_role("editor")
    def put(self, data: dict[str, Any], rule_id: str) -> dict[str, Any]:
        """Replace a rule (every field, as when creating it); what it fires for stays
        firing until its condition clears."""
        _own(rule_id)
        record = alert_store.save_rule(get_store(), _checked(data), rule_id)
        if record is None:
            raise errors.UnknownAlertRule()
        return record

    @blp.response(204)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description=_AUTH[401])
    @blp.alt_response(403, schema=schemas.ErrorSchema, description=_AUTH[403])
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown rule.")
    @blp.doc(operationId="deleteAlertRule", security=EDITOR)
    @require_role("editor")
    def delete(self, rule_id: str) -> None:
        """Delete a rule; notes already queued are still delivered."""
        _own(rule_id)
        if not alert_store.delete_rule(get_store(), rule_id):
            raise errors.UnknownAlertRule()
