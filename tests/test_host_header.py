"""No answer carries a host that only the request's Host or X-Forwarded-Host named.

Anyone can send those headers; an answer that echoes them, cached by a CDN, would send
every reader to the sender's host.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage import seeds
from engage.config import ConfigError, load_config
from engage.store import tokens
from tests.conftest import make_app
from tests.test_dashboard import sign_in

ODD_HOST = "odd-host.example"
FORWARDED_HOST = "fwd-host.example"
ODD = re.compile(rb"odd-host|fwd-host", re.IGNORECASE)
PEER = "127.0.0.1"  # a trusted proxy: even its X-Forwarded-Host is not believed


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"DEMO": True, "TRUSTED_PROXIES": [f"{PEER}/32"]}


def path_values(app: Flask, store: Any, admin: dict[str, str],
                client: FlaskClient) -> dict[str, str]:
    seeds.load(store, app.config["SEEDS_DIR"])
    hook = client.post("/api/v1/webhooks", headers=admin, json={
        "url": "https://hooks.engage.test/x", "events": ["*"], "secret": "s" * 20,
    })
    assert hook.status_code == 201, hook.json
    rule = client.post("/api/v1/alert-rules", headers=admin, json={
        "name": "Spike", "kind": "reason_spike", "reason": "inaccurate", "threshold": 5,
        "window_hours": 1, "webhook": True})
    assert rule.status_code == 201, rule.json
    return {
        "article_id": "korea-china-reset",
        "poll_id": store.redis.zrange(store.keys.polls, 0, 0)[0],
        "link_id": next(iter(store.redis.hkeys(store.keys.linkindex))),
        "webhook_id": hook.json["id"],
        "rule_id": rule.json["id"],
        "entry_id": "1-0",  # a dead letter's (none is there: the retry answers 404)
        "filename": "widget.js",
        "name": "swagger-ui.css",  # /api/docs serves Swagger UI's files by name
        "token_id": tokens.create(store, "editor", "spare")[1]["id"],
        # A newsletter's vote link (its recipient comes in the query, here none).
        "token": app.extensions["engage.identity"].sign_vote_link("korea-china-reset", 2**40),
        "choice": "yes",
    }


def check(response: Any, what: str) -> None:
    header_text = "\n".join(f"{k}: {v}" for k, v in response.headers.items()).encode()
    assert not ODD.search(header_text), (what, header_text)
    assert not ODD.search(response.get_data()), (what, response.get_data()[:300])


@pytest.mark.usefixtures("loopback_only")  # it registers a webhook by name
def test_no_answer_names_a_host_from_the_request(app: Flask, client: FlaskClient, store: Any,
                                                 admin: dict[str, str],
                                                 editor: dict[str, str]) -> None:
    values = path_values(app, store, admin, client)
    reader = client.post("/api/v1/readers").json["reader"]
    signed_in = app.test_client()
    token = tokens.create(store, "editor", "desk")[0]
    assert sign_in(signed_in, token).status_code == 302
    odd = {"X-Forwarded-Host": FORWARDED_HOST, "X-Forwarded-Proto": "https",
           "Forwarded": f"host={FORWARDED_HOST};proto=https", "X-Forwarded-Server": FORWARDED_HOST,
           "X-Original-Host": FORWARDED_HOST, "Origin": f"https://{ODD_HOST}",
           "Referer": f"https://{ODD_HOST}/page"}
    callers = {
        "anonymous": (client, {}),
        "reader": (client, {"X-Engage-Reader": reader}),
        "editor": (client, editor),
        "admin": (client, admin),
        "dashboard": (signed_in, {}),
    }
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
    # Reads first, so that no write or delete changes what a later read shows.
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "OPTIONS", "DELETE"]
    checked = 0
    for method in order:
        for rule in rules:
            if method not in rule.methods:
                continue
            path = rule.rule
            for name in rule.arguments:
                path = re.sub(rf"<[^>]*\b{name}>", values[name], path)
            query = "?article=korea-china-reset" if "widget" in path or "reactions" == path[-9:] \
                else ""
            for who, (caller, headers) in callers.items():
                kwargs: dict[str, Any] = {"headers": {**odd, **headers},
                                          "base_url": f"http://{ODD_HOST}",
                                          "environ_base": {"REMOTE_ADDR": PEER}}
                if method in ("POST", "PUT", "PATCH"):
                    kwargs["json"] = {}
                response = caller.open(path + query, method=method, **kwargs)
                assert response.status_code < 500, (method, path, who, response.status_code)
                check(response, f"{method} {path} as {who}")
                checked += 1
    assert checked >= 5 * 60


def test_widget_bundle_links_are_relative_or_public_url(app: Flask, client: FlaskClient,
                                                        store: Any, redis_server: Any,
                                                        tmp_path: Any) -> None:
    seeds.load(store, app.config["SEEDS_DIR"])
    url = "/api/v1/widget?article=korea-china-reset"
    body = client.get(url, base_url=f"http://{ODD_HOST}").json
    curated = [link for link in body["articles"]["korea-china-reset"]["links"]
               if not link.get("related")]
    assert curated and all(link["href"] == f"/r/{link['id']}" for link in curated)

    public = make_app(redis_server.url, tmp_path, PUBLIC_URL="https://engage.news.example/")
    body = public.test_client().get(url, base_url=f"http://{ODD_HOST}").json
    curated = [link for link in body["articles"]["korea-china-reset"]["links"]
               if not link.get("related")]
    assert curated and all(link["href"] == f"https://engage.news.example/r/{link['id']}"
                           for link in curated)


@pytest.mark.parametrize("value", ["engage.example", "ftp://engage.example",
                                   "https://user@engage.example", "https://e.example/?q"])
def test_public_url_must_be_a_plain_http_url(value: str) -> None:
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        load_config({"ENGAGE_PUBLIC_URL": value})
