"""Per-address limits count address groups: one IPv6 /64 is one household, not 2^64 clients."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage.config import ConfigError, load_config
from engage.identity import get_identity
from tests.conftest import make_app

MINT_LIMIT = 10
THROTTLE = 5
HOME = ipaddress.IPv6Network("2001:db8:aa:1::/64")
NEIGHBOUR = "2001:db8:aa:2::1"
PROXY = "127.0.0.1"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"TRUSTED_PROXIES": [f"{PROXY}/32"], "THROTTLE_VOTES": THROTTLE,
            "READER_MINT_LIMIT": f"{MINT_LIMIT} per minute"}


def home_addresses(count: int) -> list[str]:
    """`count` addresses spread over the whole /64, as a device picking random ones would."""
    step = (2**64 - 1) // count
    return [str(HOME[1 + i * step]) for i in range(count)]


def as_sent(index: int, address: str) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and environ of a request from `address`: directly, or through the proxy in
    each of the forms proxies write."""
    forms = [None, address, f"[{address}]", f"[{address}]:{40000 + index}"]
    form = forms[index % len(forms)]
    if form is None:
        return {}, {"REMOTE_ADDR": address}
    return {"X-Forwarded-For": f"{form}, {PROXY}"}, {"REMOTE_ADDR": PROXY}


def mint(client: FlaskClient, headers: dict[str, str], environ: dict[str, str]) -> int:
    return client.post("/api/v1/readers", headers=headers, environ_base=environ).status_code


def fresh_reader(app: Flask) -> str:
    with app.app_context():
        return get_identity().mint_reader()


def test_one_ipv6_household_shares_one_budget(app: Flask, client: FlaskClient, article: str,
                                              editor: dict[str, str]) -> None:
    addresses = home_addresses(120)
    assert len(set(addresses)) == 120
    assert all(ipaddress.ip_address(a) in HOME for a in addresses)

    minted = [mint(client, *as_sent(i, a)) for i, a in enumerate(addresses)]
    assert minted.count(201) == MINT_LIMIT
    assert set(minted) == {201, 429}

    poll = client.post("/api/v1/polls", headers=editor, json={
        "question": "Ready?", "options": ["Yes", "No"], "article": article,
    }).json
    reaction_url = f"/api/v1/articles/{article}/reactions/mine"
    poll_url = f"/api/v1/polls/{poll['id']}/votes/mine"
    option = poll["options"][0]["id"]
    for index, address in enumerate(addresses):
        headers, environ = as_sent(index, address)
        headers["X-Engage-Reader"] = fresh_reader(app)
        client.put(reaction_url, json={"choice": "yes"}, headers=headers, environ_base=environ)
        client.put(poll_url, json={"options": [option]}, headers=headers, environ_base=environ)
    assert client.get(f"/api/v1/articles/{article}/reactions").json["total"] == THROTTLE
    assert client.get(f"/api/v1/polls/{poll['id']}").json["results"]["total"] == THROTTLE

    # The next /64 is another household, with its own budget.
    neighbour = {"REMOTE_ADDR": NEIGHBOUR}
    assert mint(client, {}, neighbour) == 201
    headers = {"X-Engage-Reader": fresh_reader(app)}
    assert client.put(reaction_url, json={"choice": "no"}, headers=headers,
                      environ_base=neighbour).status_code == 200
    assert client.put(poll_url, json={"options": [option]}, headers=headers,
                      environ_base=neighbour).status_code == 200
    assert client.get(f"/api/v1/articles/{article}/reactions").json["total"] == THROTTLE + 1


def test_ipv4_mapped_form_shares_the_ipv4_budget(client: FlaskClient) -> None:
    ways = [
        ({}, {"REMOTE_ADDR": "198.51.100.7"}),
        ({}, {"REMOTE_ADDR": "::ffff:198.51.100.7"}),
        ({"X-Forwarded-For": "198.51.100.7:5000"}, {"REMOTE_ADDR": PROXY}),
        ({"X-Forwarded-For": "[::ffff:198.51.100.7]:5000"}, {"REMOTE_ADDR": PROXY}),
        ({"X-Forwarded-For": "::ffff:c633:6407"}, {"REMOTE_ADDR": PROXY}),
    ]
    minted = [mint(client, *ways[i % len(ways)]) for i in range(3 * MINT_LIMIT)]
    assert minted.count(201) == MINT_LIMIT
    # Another IPv4 address is not touched, nor the proxy itself.
    assert mint(client, {}, {"REMOTE_ADDR": "198.51.100.8"}) == 201
    assert mint(client, {}, {"REMOTE_ADDR": PROXY}) == 201


def test_wider_prefixes_are_configurable(redis_server: Any, tmp_path: Path) -> None:
    app = make_app(redis_server.url, tmp_path, ADDRESS_PREFIX_V4=24,
                   READER_MINT_LIMIT=f"{MINT_LIMIT} per minute")
    client = app.test_client()
    minted = [mint(client, {}, {"REMOTE_ADDR": f"192.0.2.{i}"}) for i in range(1, 40)]
    assert minted.count(201) == MINT_LIMIT
    assert mint(client, {}, {"REMOTE_ADDR": "192.0.3.1"}) == 201


@pytest.mark.parametrize(("name", "value"), [("ADDRESS_PREFIX_V4", "33"),
                                             ("ADDRESS_PREFIX_V6", "129"),
                                             ("ADDRESS_PREFIX_V6", "-1")])
def test_prefixes_out_of_range_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({"ENGAGE_" + name: value})
