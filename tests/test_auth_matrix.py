"""Every route of the app, classified: public (listed here), staff API, or dashboard.

The list of routes comes from `app.url_map`, so a route added later is either listed
below as public on purpose or must refuse callers without the right token.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

# (rule, method) pairs anyone may call without an editor/admin token. Reader routes
# are here too: they authenticate readers, not staff, and are tested in their rooms.
PUBLIC = {
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/metrics", "GET"),
    ("/api/docs", "GET"),
    ("/api/docs/swagger-ui/<name>", "GET"),
    ("/api/v1/openapi.json", "GET"),
    ("/static/<path:filename>", "GET"),
    ("/widget.js", "GET"),
    ("/demo/<eid:article_id>", "GET"),
    ("/r/<path:link_id>", "GET"),
    ("/r/<path:link_id>", "POST"),  # the widget's click, crediting a reader's token
    ("/your-data", "GET"),
    # Votes from newsletters (the signed link is the credential), forms and AMP pages.
    ("/v/<token>/<choice>", "GET"),
    ("/v/<token>/<choice>", "POST"),
    ("/vote/<eid:article_id>", "POST"),
    ("/vote/<eid:article_id>/amp", "GET"),
    ("/vote/<eid:article_id>/amp", "POST"),
    ("/api/v1/readers", "POST"),
    ("/api/v1/readers/renew", "POST"),
    ("/api/v1/readers/me/data", "GET"),
    ("/api/v1/readers/me/data", "DELETE"),
    ("/api/v1/articles/<eid:article_id>", "GET"),
    ("/api/v1/articles/<eid:article_id>/reactions", "GET"),
    ("/api/v1/articles/<eid:article_id>/reactions/mine", "PUT"),
    ("/api/v1/articles/<eid:article_id>/reactions/mine", "DELETE"),
    ("/api/v1/reactions", "GET"),
    ("/api/v1/articles/<eid:article_id>/links", "GET"),
    ("/api/v1/articles/<eid:article_id>/links/impressions", "POST"),
    ("/api/v1/articles/<eid:article_id>/polls", "GET"),
    ("/api/v1/polls/<eid:poll_id>", "GET"),
    ("/api/v1/polls/<eid:poll_id>/votes/mine", "PUT"),
    ("/api/v1/polls/<eid:poll_id>/votes/mine", "DELETE"),
    ("/api/v1/widget", "GET"),
    ("/api/v1/widget/mine", "GET"),
    ("/dashboard/signin", "GET"),
    ("/dashboard/signin", "POST"),
    # Sign-in through OpenID Connect (a 404 unless ENGAGE_OIDC_ISSUER is set).
    ("/dashboard/oidc/start", "GET"),
    ("/dashboard/oidc/callback", "GET"),
}
# Dashboard answers for JSON clients are 401; pages redirect to the sign-in form.
DASHBOARD_JSON = {"/dashboard/live.json", "/dashboard/export"}


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """(rule, method, endpoint) for every rule and method, HEAD/OPTIONS aside."""
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule.rule, method, rule.endpoint))
    return sorted(out)


def fill(rule: str) -> str:
    """A valid-looking value for every path parameter."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: f"x1-{m.group(1).replace('_', '-')}",
                  rule)


def declared_role(app: Flask, endpoint: str, method: str) -> str | None:
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    handler = getattr(view_class, method.lower(), None) if view_class else view
    return getattr(handler, "required_role", None)


def call(client: FlaskClient, method: str, path: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}  # a body that would fail validation: auth must answer first
    response = client.open(path, method=method, **kwargs)
    # A streamed answer keeps its request context until it is read and closed; an
    # unclosed one would leak the previous caller's identity into the next request.
    response.get_data()
    response.close()
    return response


def test_public_allowlist_matches_real_routes(app: Flask) -> None:
    existing = {(rule, method) for rule, method, _ in routes(app)}
    stale = PUBLIC - existing
    # Routes of rooms that may not be installed in every build are allowed to be absent,
    # but nothing else: a renamed public route must be renamed here too.
    optional = {("/api/v1/widget", "GET"), ("/api/v1/widget/mine", "GET")}
    assert stale <= optional, f"allowlisted but gone: {sorted(stale - optional)}"


def test_every_route_is_classified(app: Flask) -> None:
    unclassified = [
        (rule, method) for rule, method, _ in routes(app)
        if (rule, method) not in PUBLIC
        and not rule.startswith("/api/v1/")
        and not rule.startswith("/dashboard")
    ]
    assert unclassified == [], "new non-API route: list it in PUBLIC or protect it"


def test_staff_api_routes_refuse_bad_callers(
    app: Flask, client: FlaskClient, editor: dict[str, str], reader: dict[str, str]
) -> None:
    checked = 0
    reader_token = reader["X-Engage-Reader"]
    for rule, method, endpoint in routes(app):
        if (rule, method) in PUBLIC or not rule.startswith("/api/v1/"):
            continue
        path = fill(rule)
        role = declared_role(app, endpoint, method)
        assert role in ("editor", "admin"), f"{method} {rule} is neither public nor protected"
        for label, headers in (
            ("no token", {}),
            ("wrong token", {"Authorization": "Bearer eng_0000.not-a-real-secret"}),
            ("garbage scheme", {"Authorization": "Basic ZWRpdG9yOmVkaXRvcg=="}),
            ("reader token as bearer", {"Authorization": f"Bearer {reader_token}"}),
            ("reader header only", {"X-Engage-Reader": reader_token}),
        ):
            response = call(client, method, path, headers)
            assert response.status_code == 401, (method, rule, label, response.status_code)
            assert response.json["error"]["code"] == "unauthorized"
        as_editor = call(client, method, path, editor)
        if role == "admin":
            assert as_editor.status_code == 403, (method, rule, as_editor.status_code)
            assert as_editor.json["error"]["code"] == "forbidden"
        else:
            assert as_editor.status_code not in (401, 403), (method, rule, as_editor.json)
        checked += 1
    assert checked >= 8  # stats, export, article/poll/link writes, webhooks...


def test_admin_token_passes_admin_routes(
    app: Flask, client: FlaskClient, admin: dict[str, str]
) -> None:
    for rule, method, endpoint in routes(app):
        if declared_role(app, endpoint, method) == "admin":
            response = call(client, method, fill(rule), admin)
            assert response.status_code not in (401, 403), (method, rule)


def test_revoked_token_is_refused(app: Flask, client: FlaskClient, store: Any) -> None:
    from engage.store import tokens

    token, record = tokens.create(store, "editor", "leaving")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/stats/articles", headers=headers).status_code == 200
    tokens.revoke(store, record["id"])
    assert client.get("/api/v1/stats/articles", headers=headers).status_code == 401


def test_dashboard_routes_need_a_session(app: Flask, client: FlaskClient) -> None:
    checked = 0
    signin = client.get("/dashboard/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', signin.get_data(as_text=True))
    assert csrf is not None
    for rule, method, _ in routes(app):
        if (rule, method) in PUBLIC or not rule.startswith("/dashboard"):
            continue
        path = fill(rule)
        if method == "POST":
            # without a CSRF token a POST is refused before anything else ...
            refused = client.post(path, data={})
            assert refused.status_code == 403, (rule, refused.status_code)
            # ... and with one, a signed-out caller is still sent to sign in
            response = client.post(path, data={"csrf_token": csrf.group(1)})
            if rule == "/dashboard/signout":
                assert response.status_code == 302
                continue
        else:
            response = client.open(path, method=method)
        if rule in DASHBOARD_JSON:
            assert response.status_code == 401, (rule, response.status_code)
            assert response.json["error"]["code"] == "unauthorized"
        else:
            assert response.status_code == 302, (rule, response.status_code)
            assert response.headers["Location"].startswith("/dashboard/signin")
        checked += 1
    assert checked >= 6


def test_dashboard_refuses_reader_tokens_and_wrong_tokens(
    client: FlaskClient, reader: dict[str, str]
) -> None:
    page = client.get("/dashboard/signin").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    for token in (reader["X-Engage-Reader"], "eng_0000.wrong", ""):
        response = client.post("/dashboard/signin",
                               data={"token": token, "csrf_token": csrf.group(1)})
        assert response.status_code == 401
        assert client.get("/dashboard").status_code == 302
