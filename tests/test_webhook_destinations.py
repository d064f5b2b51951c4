"""Webhooks deliver to public addresses only: refused when registered and at delivery."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage import destinations
from engage.identity import get_identity
from engage.store import webhooks
from engage.worker import Worker, http_send
from tests.conftest import ARTICLE
from tests.webhook_receiver import Receiver

SECRET = "a-webhook-secret-of-some-length"

INTERNAL = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:6379/",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://admin.localhost/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:8080/hook",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://172.31.255.254/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0:8000/hook",
    "http://[::]/hook",
    "http://[fc00::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",
    "http://127.1/hook",
    "http://0/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://240.0.0.1/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "https://user:pw@127.0.0.1/hook",
]
PUBLIC = ["https://hooks.example.com/engage", "https://93.184.216.34/x",
          "http://[2606:4700:4700::1111]:8443/in"]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"WEBHOOK_RETRY_BASE": 0.01, "WEBHOOK_RETRY_MAX": 0.02, "WEBHOOK_TIMEOUT": 2.0,
            "WEBHOOK_MAX_ATTEMPTS": 2}


def post_hook(client: FlaskClient, admin: dict[str, str], url: str) -> Any:
    return client.post("/api/v1/webhooks", headers=admin,
                       json={"url": url, "events": ["*"], "secret": SECRET})


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_destinations_are_refused(client: FlaskClient, admin: dict[str, str],
                                           store: Any, url: str) -> None:
    response = post_hook(client, admin, url)
    assert response.status_code == 422, (url, response.json)
    assert response.json["error"]["code"] == "validation_failed"
    assert "url" in response.json["error"]["fields"]
    assert webhooks.list_all(store) == []


def test_refusals_say_why(client: FlaskClient, admin: dict[str, str]) -> None:
    """The forms a URL validator lets through are refused for what they point at."""
    for url in ("http://127.0.0.1/hook", "http://localhost/hook", "http://[::1]:8080/hook",
                "http://169.254.169.254/", "http://10.0.0.5/", "http://[fe80::1]/"):
        message = post_hook(client, admin, url).json["error"]["fields"]["url"][0]
        assert "not a public internet address" in message, (url, message)


@pytest.mark.parametrize("url", PUBLIC)
def test_public_destinations_are_accepted(client: FlaskClient, admin: dict[str, str],
                                          url: str) -> None:
    response = post_hook(client, admin, url)
    assert response.status_code == 201, (url, response.json)


def test_allow_private_lets_a_local_receiver_in(app: Flask, client: FlaskClient,
                                                admin: dict[str, str]) -> None:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    assert post_hook(client, admin, "http://127.0.0.1:9/hook").status_code == 201


def test_every_form_is_judged_by_the_address_it_names() -> None:
    for url in INTERNAL:
        with pytest.raises(destinations.RefusedDestination):
            destinations.resolve(url)
    assert destinations.resolve("http://0x08080808/") == ("8.8.8.8", 80)
    assert destinations.resolve("https://[::ffff:808:808]/") == ("::ffff:808:808", 443)
    assert destinations.resolve("http://127.0.0.1:5/", allow_private=True) == ("127.0.0.1", 5)


def test_delivery_checks_the_address_the_name_resolves_to() -> None:
    """A name accepted at registration that points at loopback when the worker sends
    (here `localhost`, resolved by the system as any name would be) is not delivered to."""
    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        for form in (url, receiver.url, receiver.url.replace("127.0.0.1", "2130706433")):
            assert http_send(form, b"{}", {}, 2.0) == "refused destination"
        assert receiver.requests == []
        # The same receiver, allowed: the body arrives, with the URL's own Host header.
        assert http_send(url, b"{}", {"Content-Type": "application/json"}, 2.0,
                         allow_private=True) is None
        assert len(receiver.requests) == 1
        assert receiver.requests[0]["headers"]["Host"] == url.split("/")[2]


def test_worker_refuses_a_stored_internal_destination(app: Flask, client: FlaskClient,
                                                      editor: dict[str, str],
                                                      store: Any) -> None:
    """A webhook already stored with a loopback name (registered while private ones were
    allowed) gets nothing once they are not: each attempt fails, then a dead letter."""
    with Receiver() as receiver:
        hook = webhooks.create(store, receiver.url.replace("127.0.0.1", "localhost"),
                               ["*"], SECRET)
        assert client.put("/api/v1/articles/dest", json=ARTICLE, headers=editor).status_code \
            == 201
        with app.app_context():
            reader = get_identity().mint_reader()
        assert client.put("/api/v1/articles/dest/reactions/mine", json={"choice": "yes"},
                          headers={"X-Engage-Reader": reader}).status_code == 200
        worker = Worker(store, "dest")
        deadline = time.monotonic() + 10
        while not webhooks.dead_letters(store):
            assert time.monotonic() < deadline, "no dead letter"
            if not worker.step():
                time.sleep(0.01)
        assert receiver.requests == []
    dead = webhooks.dead_letters(store)
    assert {d["webhook"] for d in dead} == {hook["id"]}
    assert all(d["error"] == "refused destination" for d in dead)
