"""Who is signed in to the dashboard, and whether a POST came from its own pages.

Sessions keep a session id, the token's id and its stored digest (never the secret)
and are checked against the store on every request: signing out deletes the session
on the server, so a copy of the cookie stops working too, and revoking a token signs
its sessions out. A sign-in through OpenID Connect (oidc.py) keeps its role, sites and
name on the server under the session id, and ends SESSION_HOURS after sign-in however
much it is used: engage cannot revoke it, so the provider is asked again.
Every POST carries a CSRF token: a per-session nonce signed with itsdangerous, sent in
a hidden form field or the `X-CSRF-Token` header.
"""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Request
from itsdangerous import BadData, URLSafeTimedSerializer

from engage.identity import get_identity
from engage.store import get_store, tokens

SESSION_HOURS = 12
SESSION_TTL = SESSION_HOURS * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class DashboardSessionInterface(SecureCookieSessionInterface):
    """The cookie is Secure whenever the request came over HTTPS, also through a trusted
    proxy that terminated TLS and said so in X-Forwarded-Proto."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if request.is_secure or super().get_cookie_secure(app):
            return True
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https" and get_identity().is_trusted(request.remote_addr or "")

    # The interface is app-wide, so it runs on every API and widget request, which never
    # carry a cookie: skip building a signing serializer for them (same empty session)
    # and the cookie attributes nobody will use (nothing to set or delete).
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = DashboardSessionInterface()
    app.config["SESSION_COOKIE_NAME"] = "engage_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)


# -- CSRF ------------------------------------------------------------------------------
def _csrf_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="engage.dashboard.csrf")


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(16)
    return str(_csrf_serializer().dumps(session["csrf"]))


def csrf_valid() -> bool:
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    expected = session.get("csrf")
    if not sent or not expected:
        return False
    try:
        nonce = _csrf_serializer().loads(sent, max_age=SESSION_TTL)
    except BadData:
        return False
    return isinstance(nonce, str) and hmac.compare_digest(nonce, expected)


# -- who is signed in --------------------------------------------------------------------
def signed_in() -> dict[str, Any] | None:
    """The record of the signed-in staff member (a token's, or what a sign-in through
    OpenID Connect left); a revoked token ends its sessions here."""
    data = session.get("staff")
    if not isinstance(data, dict) or not data.get("sid"):
        return None
    if data.get("oidc"):
        record = _oidc_record(str(data["sid"]))
    else:
        record = tokens.session_record(get_store(), str(data["sid"]), str(data.get("id", "")),
                                       str(data.get("digest", "")), SESSION_TTL)
    if record is None or record.get("role") not in tokens.ROLES:
        session.pop("staff", None)
        return None
    return record


def _oidc_record(session_id: str) -> dict[str, Any] | None:
    store = get_store()
    owner = tokens.session_owner(store, session_id, SESSION_TTL)
    try:
        record = json.loads(owner) if owner else None
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("until", 0) <= store.now().timestamp():
        return None
    return record


def sign_in(token: str) -> bool:
    """Start a session for a valid API token; False (and no session) for anything else."""
    record = tokens.verify(get_store(), token) if token else None
    if record is None:
        return False
    _start(record["id"], id=record["id"], digest=record["hash"])
    return True


def sign_in_oidc(subject: str, name: str, role: str, sites: list[str] | None) -> None:
    """Start a session for someone the OpenID Connect provider vouched for, with the role
    and sites their claim maps to (oidc.py)."""
    record = {"id": f"oidc:{subject}", "role": role, "name": name, "sites": sites,
              "until": get_store().now().timestamp() + SESSION_TTL}
    _start(json.dumps(record), oidc=True)


def _start(owner: str, **cookie: Any) -> None:
    store = get_store()
    sign_out()  # a fresh session (and CSRF nonce) after signing in
    session.permanent = True
    session["staff"] = {"sid": tokens.start_session(store, owner, SESSION_TTL), **cookie}


def sign_out() -> None:
    """End the session on the server too: the cookie, wherever copied, is worthless."""
    data = session.get("staff")
    if isinstance(data, dict) and data.get("sid"):
        tokens.end_session(get_store(), str(data["sid"]))
    session.clear()
