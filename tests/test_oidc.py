"""Staff sign-in through OpenID Connect, end to end against a real provider on loopback
(oidc-provider-mock): discovery, authorization code with PKCE, the ID token checked
against the provider's keys, the claim mapped to roles and sites."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import flask
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from engage.config import ConfigError, load_config, role_map
from engage.identity import site_scope
from engage.web import oidc
from tests.conftest import Clock, make_app
from tests.live_server import serving

pytestmark = pytest.mark.usefixtures("loopback_only")

PUBLIC_URL = "https://engage.example"
CALLBACK = PUBLIC_URL + oidc.CALLBACK
ROLES = "newsroom-admins=admin,desk-a=editor:site-a,desk-b=editor:site-b+site-c,night=editor"
USERS = {
    "chief@example.com": ["newsroom-admins", "desk-a"],
    "desk@example.com": ["desk-a", "staff"],
    "twodesks@example.com": ["desk-a", "desk-b"],
    "night@example.com": ["night", "desk-b"],
    "intern@example.com": ["interns"],
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    # Imported here, where the warning filters of pyproject.toml apply: the first import
    # of authlib (done above, with engage) puts an "always" filter in front of them.
    import oidc_provider_mock

    users = [oidc_provider_mock.User(sub=email.split("@")[0], claims={"email": email, "groups": g})
             for email, g in USERS.items()]
    with serving(oidc_provider_mock.app(require_nonce=True, user_claims=users)) as server:
        yield f"http://127.0.0.1:{server.server_port}"


def oidc_config(issuer: str) -> dict[str, Any]:
    return {"OIDC_ISSUER": issuer, "OIDC_CLIENT_ID": "engage",
            "OIDC_CLIENT_SECRET": "not-a-real-secret", "OIDC_NAME": "Newsroom ID",
            "PUBLIC_URL": PUBLIC_URL, "OIDC_ROLES": role_map(ROLES)}


@pytest.fixture
def app_config(provider: str) -> dict[str, Any]:
    return oidc_config(provider)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def sign_in(client: FlaskClient, user: str, next_page: str = "",
            at_provider: Callable[[str], str] = str,
            back_at_engage: Callable[[str], str] = str) -> Any:
    """Start at engage, approve as `user` at the provider, follow it back to engage:
    engage's answer to the callback. The two hooks may change the URLs on the way."""
    start = client.get("/dashboard/oidc/start", query_string={"next": next_page})
    assert start.status_code == 302, start.get_data(as_text=True)
    approved = requests.post(at_provider(start.headers["Location"]), data={"sub": user},
                             allow_redirects=False, timeout=10)
    assert approved.status_code == 302, approved.text
    back = back_at_engage(approved.headers["Location"])
    assert back.startswith(CALLBACK + "?")
    return client.get(back.removeprefix(PUBLIC_URL))


def signed_out(client: FlaskClient) -> bool:
    response = client.get("/dashboard")
    return response.status_code == 302 and response.headers["Location"].startswith(
        "/dashboard/signin")


def session_keys(store: Any) -> list[str]:
    return list(store.redis.scan_iter(match=f"{store.keys.prefix}:session:*"))


def test_sign_in_page_offers_the_provider_and_tokens(client: FlaskClient) -> None:
    page = client.get("/dashboard/signin?next=/dashboard/live").get_data(as_text=True)
    assert "Sign in with Newsroom ID" in page
    assert "/dashboard/oidc/start?next=/dashboard/live" in page
    assert 'name="token"' in page


def test_authorization_request_uses_pkce_state_and_nonce(client: FlaskClient,
                                                         provider: str) -> None:
    location = client.get("/dashboard/oidc/start").headers["Location"]
    assert location.startswith(f"{provider}/oauth2/authorize?")
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["scope"] == ["openid email profile"]


def test_admin_group_signs_in_and_reaches_admin_pages(app: Flask, client: FlaskClient,
                                                      store: Any) -> None:
    response = sign_in(client, "chief", next_page="/dashboard/admin/tokens")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard/admin/tokens"
    page = client.get("/dashboard/admin/tokens")
    assert page.status_code == 200
    assert "chief@example.com" in page.get_data(as_text=True)
    with client:
        assert client.get("/dashboard/admin/webhooks").status_code == 200
        assert flask.g.staff["role"] == "admin" and site_scope() is None
    assert store.redis.hlen(store.keys.tokens_used) == 0  # no token's last use to note
    # Neither the cookie nor the server keeps the provider's tokens or the flow's state.
    cookie = client.get_cookie("engage_session")
    assert cookie is not None
    data = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined]
    assert set(data["staff"]) == {"sid", "oidc"}
    assert not [key for key in data if key.startswith("_state") or key == "oidc_next"]
    [key] = session_keys(store)
    assert set(json.loads(store.redis.get(key))) == {
        "id", "role", "name", "sites", "until"}


@pytest.mark.parametrize(("user", "scope"), [
    ("desk", ["site-a"]),
    ("twodesks", ["site-a", "site-b", "site-c"]),
    ("night", None),  # one of the groups maps to every site
])
def test_editor_gets_the_sites_of_their_groups(client: FlaskClient, user: str,
                                               scope: list[str] | None) -> None:
    assert sign_in(client, user).headers["Location"] == "/dashboard"
    with client:
        assert client.get("/dashboard").status_code == 200
        assert flask.g.staff["role"] == "editor"
        assert site_scope() == scope
    assert client.get("/dashboard/admin/tokens").status_code == 403


def test_user_without_a_mapped_group_is_refused_with_a_clear_page(client: FlaskClient,
                                                                  store: Any) -> None:
    response = sign_in(client, "intern", next_page="/dashboard/admin/tokens")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "intern@example.com" in page and "no engage role" in page.lower()
    assert "ENGAGE_OIDC_ROLES" in page
    assert signed_out(client)
    assert session_keys(store) == []


@pytest.mark.parametrize("tampered", [
    # The state engage gets back is not the one it sent.
    {"back_at_engage": lambda url: with_query(url, state="forged-state")},
    # The provider signs the nonce it was sent into the ID token; it must be engage's.
    {"at_provider": lambda url: with_query(url, nonce="forged-nonce")},
], ids=["state", "nonce"])
def test_tampered_state_or_nonce_is_refused(client: FlaskClient, store: Any,
                                            tampered: dict[str, Any]) -> None:
    response = sign_in(client, "chief", **tampered)
    assert response.status_code == 400
    assert "did not complete" in response.get_data(as_text=True)
    assert signed_out(client)
    assert session_keys(store) == []


def test_callback_without_a_started_sign_in_is_refused(client: FlaskClient) -> None:
    response = client.get("/dashboard/oidc/callback?code=abc&state=xyz")
    assert response.status_code == 400
    assert signed_out(client)


def test_sign_out_ends_the_session_also_for_a_copied_cookie(client: FlaskClient,
                                                            store: Any) -> None:
    sign_in(client, "desk")
    cookie = client.get_cookie("engage_session")
    assert cookie is not None
    page = client.get("/dashboard").get_data(as_text=True)
    csrf = CSRF.search(page)
    assert csrf is not None
    response = client.post("/dashboard/signout", data={"csrf_token": csrf.group(1)})
    assert response.status_code == 302
    assert signed_out(client)
    assert session_keys(store) == []
    client.set_cookie("engage_session", cookie.value)
    assert signed_out(client)


def test_session_ends_its_lifetime_after_sign_in_however_used(client: FlaskClient,
                                                             clock: Clock) -> None:
    sign_in(client, "desk")
    clock.advance(11 * 3600)
    assert client.get("/dashboard").status_code == 200
    clock.advance(2 * 3600)
    assert signed_out(client)


def test_tokens_still_sign_in(client: FlaskClient, editor_token: str) -> None:
    page = client.get("/dashboard/signin").get_data(as_text=True)
    csrf = CSRF.search(page)
    assert csrf is not None
    response = client.post("/dashboard/signin",
                           data={"token": editor_token, "csrf_token": csrf.group(1)})
    assert response.status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_provider_not_answering_is_a_clear_page(redis_server: Any, tmp_path: Any) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        issuer = f"http://127.0.0.1:{closed.getsockname()[1]}"
        client = make_app(redis_server.url, tmp_path, **oidc_config(issuer)).test_client()
        response = client.get("/dashboard/oidc/start")
    assert response.status_code == 502
    assert "did not answer" in response.get_data(as_text=True)


def test_without_an_issuer_the_routes_are_absent(redis_server: Any, tmp_path: Any) -> None:
    client = make_app(redis_server.url, tmp_path).test_client()
    assert client.get("/dashboard/oidc/start").status_code == 404
    assert "Sign in with" not in client.get("/dashboard/signin").get_data(as_text=True)


@pytest.mark.parametrize(("environ", "message"), [
    ({"ENGAGE_OIDC_ISSUER": "https://id.example"}, "ENGAGE_OIDC_CLIENT_ID"),
    ({"ENGAGE_OIDC_ISSUER": "http://id.example", "ENGAGE_OIDC_CLIENT_ID": "e",
      "ENGAGE_OIDC_CLIENT_SECRET": "s", "ENGAGE_OIDC_ROLES": "g=admin",
      "ENGAGE_PUBLIC_URL": PUBLIC_URL}, "https"),
    ({"ENGAGE_OIDC_ROLES": "g=admin:site-a"}, "g=admin:site-a"),
    ({"ENGAGE_OIDC_ROLES": "g=owner"}, "g=owner"),
    ({"ENGAGE_OIDC_ROLES": "g=editor:"}, "g=editor:"),
])
def test_configuration_mistakes_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(environ=environ)
