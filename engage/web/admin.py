"""Admin pages: API tokens, webhooks, sites and the audit log. Editors are refused (403).

A token's secret is shown once, in the answer to the form that created it; the store
keeps only its digest. A webhook's signing secret is shown in the form that registers
it and never again.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import g, redirect, request, url_for

from engage import destinations, schemas
from engage.errors import IdTaken
from engage.store import audit, get_store, sites, tokens, webhooks
from engage.web import dashboard, forms, session
from engage.web.forms import Errors

bp = forms.staff_blueprint("admin", __name__)
DEAD_SHOWN = 20  # dead letters listed on the webhooks page; the API lists 100


@bp.before_request
def _admins_only() -> Any:
    # Runs after the shared guard, which has signed the caller in (or sent them away).
    if g.get("staff") is not None and g.staff.get("role") != "admin":
        return dashboard.refuse(403, "forbidden", "Only admins manage tokens, webhooks and sites.")
    return None


# -- tokens -------------------------------------------------------------------------------
NEW_TOKEN = {"role": "editor", "name": "", "expires_days": ""}  # the empty form
def _tokens_page(form: dict[str, Any], errors: Errors, status: int = 200,
                 created: str | None = None, confirm: dict[str, Any] | None = None) -> Any:
    return forms.render(
        "dashboard/admin_tokens.html", status, page="admin", tokens=tokens.list_all(get_store()),
        roles=schemas.TOKEN_ROLES, form=form, errors=errors, created=created,
        notice=request.args.get("notice"), me=g.staff["id"], confirm=confirm,
    )


@bp.route("/admin/tokens", methods=["GET", "POST"])
def token_list() -> Any:
    if request.method == "GET":
        return _tokens_page(NEW_TOKEN, {})
    shown = {"role": request.form.get("role", ""), "name": request.form.get("name", ""),
             "expires_days": request.form.get("expires_days", "")}
    data, errors = forms.load(schemas.TokenInSchema(),
                              {**shown, "expires_days": forms.number(shown["expires_days"])})
    if errors:
        return _tokens_page(shown, errors, 422)
    token, _ = tokens.create(get_store(), data["role"], data["name"],
                             expires_days=data["expires_days"])
    # The answer itself shows the token: never a redirect that would carry it in a URL.
    return _tokens_page(NEW_TOKEN, {}, 201, created=token)


@bp.route("/admin/tokens/<eid:token_id>/revoke", methods=["GET", "POST"])
def token_revoke(token_id: str) -> Any:
    """GET asks to confirm (a revoked token cannot be restored); POST revokes."""
    if request.method == "GET":
        found = [t for t in tokens.list_all(get_store()) if t["id"] == token_id]
        if not found:
            return dashboard.refuse(404, "not_found", "No token exists under this id.")
        return _tokens_page(NEW_TOKEN, {}, confirm=found[0])
    if not tokens.revoke(get_store(), token_id):
        return dashboard.refuse(404, "not_found", "No token exists under this id.")
    if token_id == g.staff["id"]:  # this session went with it
        session.sign_out()
        return redirect(url_for("dashboard.signin", revoked=1))
    return redirect(url_for("admin.token_list", notice=f"Token {token_id} revoked."))


# -- webhooks -----------------------------------------------------------------------------
def _webhooks_page(form: dict[str, Any], errors: Errors, status: int = 200,
                   notice: str | None = None) -> Any:
    store = get_store()
    return forms.render(
        "dashboard/admin_webhooks.html", status, page="admin", webhooks=webhooks.listed(store),
        dead=webhooks.dead_letters(store, DEAD_SHOWN),
        patterns=schemas.WEBHOOK_EVENT_PATTERNS, form=form, errors=errors,
        sites=list(sites.listing(store)),
        notice=notice or request.args.get("notice"),
    )


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


@bp.route("/admin/webhooks", methods=["GET", "POST"])
def webhook_list() -> Any:
    if request.method == "GET":
        return _webhooks_page({"url": "", "events": [], "secret": _new_secret(), "site": ""}, {})
    shown = {"url": request.form.get("url", "").strip(),
             "events": request.form.getlist("events"),
             "secret": request.form.get("secret", ""),
             "site": request.form.get("site", "")}
    data, errors = forms.load(schemas.WebhookInSchema(), {**shown, "site": shown["site"] or None})
    store = get_store()
    # the API's second rule: deliveries go to public addresses only
    if not errors and (why := destinations.refused(data["url"], store.config)):
        errors = {"url": [why]}
    if not errors and data["site"] is not None and data["site"] not in sites.listing(store):
        errors = {"site": ["No such site."]}
    if errors:
        return _webhooks_page(shown, errors, 422)
    record = webhooks.create(store, data["url"], data["events"], data["secret"], data["site"])
    return _webhooks_page(
        {"url": "", "events": [], "secret": _new_secret(), "site": ""}, {}, 201,
        notice=f"Webhook {record['id']} registered. Its signing secret was the one in the "
               "form; it is not shown again.",
    )


@bp.post("/admin/webhooks/<eid:webhook_id>/delete")
def webhook_delete(webhook_id: str) -> Any:
    if not webhooks.delete(get_store(), webhook_id):
        return dashboard.refuse(404, "not_found", "No webhook exists under this id.")
    return redirect(url_for("admin.webhook_list", notice=f"Webhook {webhook_id} removed."))


@bp.post("/admin/webhooks/<eid:webhook_id>/test")
def webhook_test(webhook_id: str) -> Any:
    store = get_store()
    if not webhooks.exists(store, webhook_id):
        return dashboard.refuse(404, "not_found", "No webhook exists under this id.")
    delivery = webhooks.queue_test(store, webhook_id)
    return redirect(url_for(
        "admin.webhook_list", notice=f"Test event {delivery} queued: the worker sends it within "
        "seconds, and its outcome shows under Last delivery (reload the page)."))


@bp.post("/admin/webhooks/dead/<entry_id>/retry")
def webhook_retry(entry_id: str) -> Any:
    # a stream entry id, checked before it reaches XRANGE (which refuses a malformed one)
    if not re.fullmatch(r"[0-9]{1,20}-[0-9]{1,20}", entry_id) or not webhooks.retry_dead(
            get_store(), entry_id):
        return dashboard.refuse(404, "not_found", "No such dead letter.")
    return redirect(url_for("admin.webhook_list", notice="Delivery queued again: the worker "
                            "sends it within seconds, and its outcome shows under Last delivery."))


# -- audit log ----------------------------------------------------------------------------
@bp.get("/admin/audit")
def audit_log() -> Any:
    return forms.render("dashboard/admin_audit.html", 200, page="admin",
                        entries=audit.entries(get_store()))


# -- sites --------------------------------------------------------------------------------
SITE_FIELDS = ("name", "origins", "locale", "choices", "reason_choice", "reasons",
               "links_shown", "cache_max_age", "cache_stale", "digest_to", "feeds")
SITE_NUMBERS = ("links_shown", "cache_max_age", "cache_stale")


def _site_shown(site: dict[str, Any]) -> dict[str, Any]:
    return {"name": site["name"], "origins": ", ".join(site["origins"]),
            "locale": site["locale"], **forms.shown_set(site["reactions"]),
            **{name: str(site[name]) for name in SITE_NUMBERS},
            "digest_to": ", ".join(site.get("digest_to") or []),
            "feeds": ", ".join(site.get("feeds") or [])}


def _site_input(form: Any) -> dict[str, Any]:
    """The form as createSite's or updateSite's JSON body. A field left blank is left
    out: a new site takes the default site's value, an edited one keeps its own."""
    data = {"origins": forms.listed(form.get("origins")), "locale": form.get("locale", "").strip(),
            "reactions": forms.reaction_set(form), "digest_to": forms.listed(form.get("digest_to")),
            **{name: forms.number(form.get(name)) for name in SITE_NUMBERS}}
    kept = {name: value for name, value in data.items() if value not in ("", None, [])}
    # Feeds always: a blank field is how an admin stops the polling.
    return {**kept, "feeds": forms.listed(form.get("feeds"))}


def _sites_page(form: dict[str, Any], errors: Errors, status: int = 200,
                editing: str | None = None) -> Any:
    return forms.render(
        "dashboard/admin_sites.html", status, page="admin",
        sites=list(sites.listing(get_store()).values()), form=form, errors=errors,
        editing=editing, notice=request.args.get("notice"),
        default=get_store().config["DEFAULT_SITE"],
    )


@bp.route("/admin/sites", methods=["GET", "POST"])
def site_list() -> Any:
    store = get_store()
    if request.method == "GET":
        return _sites_page({**_site_shown(sites.site_or_default(store, None)),
                            "name": "", "origins": "", "feeds": ""}, {})
    shown = {name: request.form.get(name, "") for name in SITE_FIELDS}
    data, errors = forms.load(schemas.SiteInSchema(), {"name": shown["name"].strip(),
                                                       **_site_input(request.form)})
    if errors:
        return _sites_page(shown, errors, 422)
    try:
        sites.create(store, data)
    except IdTaken:
        return _sites_page(shown, {"name": ["A site exists under this name."]}, 422)
    return redirect(url_for("admin.site_list", notice=f"Site {data['name']} created."))


@bp.route("/admin/sites/<eid:name>", methods=["GET", "POST"])
def site_edit(name: str) -> Any:
    store = get_store()
    site = sites.listing(store).get(name)
    if site is None:
        return dashboard.refuse(404, "not_found", "No site exists under this name.")
    if request.method == "GET":
        return _sites_page(_site_shown(site), {}, editing=name)
    shown = {**{field: request.form.get(field, "") for field in SITE_FIELDS}, "name": name}
    data, errors = forms.load(schemas.SiteChangesSchema(), _site_input(request.form))
    if errors:
        return _sites_page(shown, errors, 422, editing=name)
    sites.update(store, name, data)
    return redirect(url_for("admin.site_list", notice=f"Site {name} saved."))
