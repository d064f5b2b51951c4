"""Staff sign-in through the newsroom's OpenID Connect provider (docs/oidc.md).

authlib's Flask client runs the authorization code flow with PKCE (S256). It keeps the
state, nonce and code verifier in the signed session cookie until the provider sends
the browser back, then checks the state, and the ID token's signature (against the
provider's JWKS), issuer, audience, expiry and nonce. The discovery document, keys and
token endpoint come from ENGAGE_OIDC_ISSUER, which the operator set, so they are
trusted as configured: nothing a request says is ever fetched. The ENGAGE_OIDC_CLAIM
values map to a role and sites (ENGAGE_OIDC_ROLES); who maps to none is refused with
nothing stored. The tokens are dropped after the callback: the session keeps a role,
sites and a name (session.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import flask
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import current_app, redirect, request
from joserfc.errors import JoseError

from engage.web import dashboard, forms, session

bp = forms.staff_blueprint("oidc", __name__)

# Under /dashboard: the redirect URI to register at the provider is PUBLIC_URL + this.
CALLBACK = "/dashboard/oidc/callback"
# A provider that does not answer must not hold a server worker for long.
PROVIDER_TIMEOUT = 5.0
# What a failed exchange with the provider raises: its refusals, a bad ID token, and
# the provider not answering (or not with JSON).
FAILURES = (AuthlibBaseError, JoseError, requests.RequestException)


@bp.record_once
def _register(state: Any) -> None:
    app = state.app
    issuer = app.config["OIDC_ISSUER"]
    if not issuer:
        return
    app.extensions["engage.oidc"] = OAuth(app).register(
        "oidc",
        client_id=app.config["OIDC_CLIENT_ID"],
        client_secret=app.config["OIDC_CLIENT_SECRET"],
        server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": app.config["OIDC_SCOPES"], "code_challenge_method": "S256",
                       "default_timeout": PROVIDER_TIMEOUT},
    )
    app.jinja_env.globals["oidc_provider"] = app.config["OIDC_NAME"] or urlsplit(issuer).netloc


def _client() -> Any:
    client = current_app.extensions.get("engage.oidc")
    if client is None:
        flask.abort(404)
    return client


@bp.get("/oidc/start")
def start() -> Any:
    client = _client()
    try:
        # Discovery says who the provider is; a document naming another issuer is not it.
        issuer = client.load_server_metadata().get("issuer", "")
        if issuer.rstrip("/") != current_app.config["OIDC_ISSUER"].rstrip("/"):
            raise AuthlibBaseError(description=f"discovery names issuer {issuer!r}")
        response = client.authorize_redirect(current_app.config["PUBLIC_URL"].rstrip("/")
                                             + CALLBACK)
    except FAILURES as exc:
        return _failed(exc)
    flask.session["oidc_next"] = dashboard.safe_next(request.args.get("next"))
    return response


@bp.get(CALLBACK.removeprefix("/dashboard"))
def callback() -> Any:
    client = _client()
    target = dashboard.safe_next(flask.session.pop("oidc_next", None))
    try:
        claims = client.authorize_access_token().get("userinfo")
        if not claims:
            raise AuthlibBaseError(description="the provider sent no ID token")
    except FAILURES as exc:
        return _failed(exc)
    account = str(claims.get("email") or claims.get("preferred_username") or claims["sub"])
    grant = staff_grant(claims.get(current_app.config["OIDC_CLAIM"]))
    if grant is None:
        current_app.logger.warning("oidc sign-in refused: no role mapped for %s", account)
        return dashboard.refuse(
            403, "no_role",
            f"No engage role for {account}: none of its {current_app.config['OIDC_CLAIM']} "
            "values is in ENGAGE_OIDC_ROLES. Ask an engage admin to map one of your "
            "groups, or sign in with an API token.")
    session.sign_in_oidc(str(claims["sub"]), account, *grant)
    return redirect(target)


def staff_grant(values: Any) -> tuple[str, list[str] | None] | None:
    """The role and sites the claim's values map to: the highest role any value maps
    to, and the sites of all of them (None, every site, for an admin or where any
    value maps to every site). None when no value is mapped."""
    if isinstance(values, str):
        values = [values]
    mapping = current_app.config["OIDC_ROLES"]
    grants = [mapping[v] for v in values or () if isinstance(v, str) and v in mapping]
    if not grants:
        return None
    if any(role == "admin" for role, _ in grants):
        return "admin", None
    if any(sites is None for _, sites in grants):
        return "editor", None
    return "editor", sorted({site for _, sites in grants for site in sites or ()})


def _failed(exc: Exception) -> Any:
    current_app.logger.warning("oidc sign-in failed: %r", exc)
    unreachable = isinstance(exc, requests.RequestException)
    return dashboard.refuse(
        502 if unreachable else 400, "oidc_failed",
        "The identity provider did not answer; try again in a moment." if unreachable
        else "Signing in through the identity provider did not complete; start again.")
