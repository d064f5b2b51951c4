"""Webhooks deliver to public addresses only: refused when registered and at delivery.

Names are looked up at the suite's DNS server (tests/dns_server.py, ENGAGE_WEBHOOK_DNS),
which answers what each test sets; `loopback_only` fails a test that asks the system's
resolver for a name or sends anything off loopback."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import dns.message
import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage import destinations
from engage.identity import get_identity
from engage.store import webhooks
from engage.worker import Worker, http_send
from tests.conftest import ARTICLE, network_use
from tests.dns_server import DnsServer
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.usefixtures("loopback_only")

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
PUBLIC = ["https://hooks.engage.test/engage", "https://93.184.216.34/x",
          "http://[2606:4700:4700::1111]:8443/in"]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"WEBHOOK_RETRY_BASE": 0.01, "WEBHOOK_RETRY_MAX": 0.02, "WEBHOOK_TIMEOUT": 2.0,
            "WEBHOOK_MAX_ATTEMPTS": 2}


def post_hook(client: FlaskClient, admin: dict[str, str], url: str) -> Any:
    return client.post("/api/v1/webhooks", headers=admin,
                       json={"url": url, "events": ["*"], "secret": SECRET})


def rules_at(*servers: tuple[str, int], allow_private: bool = False,
             timeout: float = 2.0) -> destinations.Rules:
    return destinations.rules({"WEBHOOK_ALLOW_PRIVATE": allow_private,
                               "WEBHOOK_DNS": list(servers), "WEBHOOK_DNS_TIMEOUT": timeout})


def vote_once(app: Flask, client: FlaskClient, editor: dict[str, str], article_id: str) -> None:
    assert client.put(f"/api/v1/articles/{article_id}", json=ARTICLE,
                      headers=editor).status_code == 201
    with app.app_context():
        reader = get_identity().mint_reader()
    assert client.put(f"/api/v1/articles/{article_id}/reactions/mine", json={"choice": "yes"},
                      headers={"X-Engage-Reader": reader}).status_code == 200


def run_to_dead_letter(store: Any, consumer: str) -> list[dict[str, Any]]:
    worker = Worker(store, consumer)
    deadline = time.monotonic() + 10
    while not webhooks.dead_letters(store):
        assert time.monotonic() < deadline, "no dead letter"
        if not worker.step():
            time.sleep(0.01)
    return list(webhooks.dead_letters(store))


@pytest.fixture
def silent_dns() -> Iterator[socket.socket]:
    """A DNS server that takes every question and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def asked(sock: socket.socket) -> set[str]:
    """The names asked of a silent server so far."""
    sock.setblocking(False)
    names = set()
    while True:
        try:
            wire = sock.recv(4096)
        except BlockingIOError:
            return names
        names.add(dns.message.from_wire(wire).question[0].name.to_text(omit_final_dot=True))


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
    allowed = destinations.Rules(allow_private=True)
    assert destinations.resolve("http://127.0.0.1:5/", allowed) == ("127.0.0.1", 5)


# -- names, through the test's DNS server ------------------------------------------------
@pytest.mark.parametrize("addresses", [
    ("127.0.0.1",), ("::1",), ("10.1.2.3",), ("169.254.169.254",),
    ("93.184.216.34", "fd00::1"),  # one public A does not excuse a private AAAA
    ("2606:2800:220:1:248:1893:25c8:1946", "192.168.0.10"),
])
def test_a_name_resolving_to_a_non_public_address_is_refused(
    client: FlaskClient, admin: dict[str, str], store: Any, name_server: DnsServer,
    addresses: tuple[str, ...],
) -> None:
    name_server.set("inside.engage.test", *addresses)
    response = post_hook(client, admin, "https://inside.engage.test/hook")
    assert response.status_code == 422, response.json
    assert "inside.engage.test is not a public internet address" in \
        response.json["error"]["fields"]["url"][0]
    assert webhooks.list_all(store) == []
    assert {("inside.engage.test", "A"), ("inside.engage.test", "AAAA")} <= \
        set(name_server.questions)


@pytest.mark.parametrize("addresses", [
    ("93.184.216.34",), ("2606:4700:4700::1111",),
    ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"),
])
def test_a_name_resolving_to_public_addresses_is_accepted(
    client: FlaskClient, admin: dict[str, str], name_server: DnsServer,
    addresses: tuple[str, ...],
) -> None:
    name_server.set("outside.engage.test", *addresses)
    assert post_hook(client, admin, "https://outside.engage.test/hook").status_code == 201
    assert {("outside.engage.test", "A"), ("outside.engage.test", "AAAA")} <= \
        set(name_server.questions)


def test_resolve_connects_to_the_address_the_dns_gave(name_server: DnsServer) -> None:
    rules = rules_at(name_server.address)
    assert destinations.resolve("https://hooks.engage.test/x", rules) == ("93.184.216.34", 443)
    name_server.set("six.engage.test", "2606:4700:4700::1111")
    assert destinations.resolve("http://six.engage.test:8443/", rules) == \
        ("2606:4700:4700::1111", 8443)
    with pytest.raises(destinations.Unresolved):
        destinations.resolve("https://nowhere.engage.test/", rules)  # NXDOMAIN
    name_server.set("empty.engage.test")
    with pytest.raises(destinations.Unresolved):
        destinations.resolve("https://empty.engage.test/", rules)  # no A, no AAAA


def test_a_name_that_does_not_resolve_yet_is_let_through(
    client: FlaskClient, admin: dict[str, str], name_server: DnsServer
) -> None:
    """As with the system's resolver: every delivery checks the name again."""
    assert post_hook(client, admin, "https://later.engage.test/hook").status_code == 201
    assert name_server.questions == [("later.engage.test", "A")]  # NXDOMAIN: no AAAA asked


def test_delivery_checks_the_address_the_name_resolves_to(name_server: DnsServer) -> None:
    """A name that points at loopback when the worker sends is not delivered to."""
    name_server.set("receiver.engage.test", "127.0.0.1")
    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "receiver.engage.test")
        for form in (url, receiver.url, receiver.url.replace("127.0.0.1", "2130706433"),
                     receiver.url.replace("127.0.0.1", "localhost")):
            assert http_send(form, b"{}", {}, 2.0, rules_at(name_server.address)) \
                == "refused destination"
        assert receiver.requests == []
        # The same receiver, allowed: the body arrives, with the URL's own Host header.
        assert http_send(url, b"{}", {"Content-Type": "application/json"}, 2.0,
                         rules_at(name_server.address, allow_private=True)) is None
        assert len(receiver.requests) == 1
        assert receiver.requests[0]["headers"]["Host"] == url.split("/")[2]


def test_a_name_rebound_to_loopback_after_registration_gets_nothing(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str],
    store: Any, name_server: DnsServer,
) -> None:
    """DNS rebinding: public when registered, loopback when the worker sends. The worker
    looks the name up again and refuses it; the receiver on loopback hears nothing."""
    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "rebind.engage.test")
        name_server.set("rebind.engage.test", "93.184.216.34")
        assert post_hook(client, admin, url).status_code == 201
        name_server.set("rebind.engage.test", "127.0.0.1")
        vote_once(app, client, editor, "rebind")
        dead = run_to_dead_letter(store, "rebind")
        assert receiver.requests == []
    assert dead and all(d["error"] == "refused destination" for d in dead)
    assert name_server.questions.count(("rebind.engage.test", "A")) >= 3  # 1 + each attempt


def test_a_silent_dns_server_holds_a_registration_no_longer_than_its_timeout(
    app: Flask, client: FlaskClient, admin: dict[str, str], silent_dns: socket.socket
) -> None:
    app.config["WEBHOOK_DNS"] = [silent_dns.getsockname()]
    app.config["WEBHOOK_DNS_TIMEOUT"] = 0.5
    started = time.monotonic()
    response = post_hook(client, admin, "https://quiet.engage.test/hook")
    took = time.monotonic() - started
    assert response.status_code == 201, response.json  # let through, as a name not found
    assert 0.45 <= took < 1.5, took
    assert asked(silent_dns) == {"quiet.engage.test"}


def test_a_silent_dns_server_fails_a_delivery_within_its_timeout(
    silent_dns: socket.socket
) -> None:
    started = time.monotonic()
    failure = http_send("https://quiet.engage.test/hook", b"{}", {}, 2.0,
                        rules_at(silent_dns.getsockname(), timeout=0.5))
    assert failure == "Unresolved"
    assert time.monotonic() - started < 1.5
    assert asked(silent_dns) == {"quiet.engage.test"}


def test_the_next_server_answers_when_the_first_is_silent(
    app: Flask, client: FlaskClient, admin: dict[str, str], store: Any,
    silent_dns: socket.socket, name_server: DnsServer,
) -> None:
    app.config["WEBHOOK_DNS"] = [silent_dns.getsockname(), name_server.address]
    app.config["WEBHOOK_DNS_TIMEOUT"] = 1.0
    name_server.set("inside.engage.test", "127.0.0.1")
    started = time.monotonic()
    response = post_hook(client, admin, "https://inside.engage.test/hook")
    assert time.monotonic() - started < 2.0
    assert response.status_code == 422, response.json
    assert webhooks.list_all(store) == []
    assert asked(silent_dns) == {"inside.engage.test"}


def test_worker_refuses_a_stored_internal_destination(app: Flask, client: FlaskClient,
                                                      editor: dict[str, str],
                                                      store: Any) -> None:
    """A webhook already stored with a loopback name (registered while private ones were
    allowed) gets nothing once they are not: each attempt fails, then a dead letter."""
    with Receiver() as receiver:
        hook = webhooks.create(store, receiver.url.replace("127.0.0.1", "localhost"),
                               ["*"], SECRET)
        vote_once(app, client, editor, "dest")
        dead = run_to_dead_letter(store, "dest")
        assert receiver.requests == []
    assert {d["webhook"] for d in dead} == {hook["id"]}
    assert all(d["error"] == "refused destination" for d in dead)


def test_the_watch_sees_a_system_lookup_and_traffic_off_loopback() -> None:
    """What `loopback_only` fails a test for, shown with audit events raised by hand."""
    seen = network_use()
    before = len(seen)
    sys.audit("socket.getaddrinfo", "hooks.engage.test", 443, 0, 0, 0)
    sys.audit("socket.getaddrinfo", "127.0.0.1", 6379, 0, 0, 0)
    sys.audit("socket.getaddrinfo", "localhost", 80, 0, 0, 0)
    sys.audit("socket.getaddrinfo", b"2606:4700:4700::1111", 443, 0, 0, 0)
    sys.audit("socket.gethostbyaddr", "93.184.216.34")
    sys.audit("socket.connect", None, ("93.184.216.34", 443))
    sys.audit("socket.sendto", None, ("2606:4700:4700::1111", 53, 0, 0))
    sys.audit("socket.connect", None, ("127.0.0.1", 6379))
    sys.audit("socket.connect", None, "/tmp/redis.sock")
    assert seen[before:] == ["socket.getaddrinfo 'hooks.engage.test'",
                             "socket.gethostbyaddr '93.184.216.34'",
                             "socket.connect ('93.184.216.34', 443)",
                             "socket.sendto ('2606:4700:4700::1111', 53, 0, 0)"]
    del seen[before:]  # raised by hand: not this test's traffic
