"""Budgets above the household: one IPv6 /56 or /48, or one IPv4 /24, moves an article,
a poll or a link by its own budget at most, whatever number of /64s or addresses it
spreads over; voters in different networks are all counted.

The tests run with the documented defaults (engage/config.py, docs/configuration.md),
through a trusted proxy, as the reported attack did.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage.config import load_config
from engage.identity import WIDER_NETWORKS, Identity, get_identity
from engage.store import reactions
from engage.store.budgets import network_setting
from tests.conftest import make_app
from tests.test_clicks import CHROME, LINKS, refused
from tests.test_dashboard import sign_in

PROXY = "127.0.0.1"
DEFAULTS = load_config({})
WINDOW = DEFAULTS["THROTTLE_WINDOW"]
HOUSEHOLD = DEFAULTS["THROTTLE_VOTES"]
SITE_56 = DEFAULTS["THROTTLE_VOTES_V6_56"]
SITE_48 = DEFAULTS["THROTTLE_VOTES_V6_48"]
BLOCK_24 = DEFAULTS["THROTTLE_VOTES_V4_24"]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"TRUSTED_PROXIES": [f"{PROXY}/32"]}


def sixty_fours(network: str, count: int) -> list[str]:
    """One address in each of `count` /64s of `network`, spread evenly over it (so over
    as many of a /48's /56s as they can be)."""
    net = ipaddress.IPv6Network(network)
    step = 2 ** (64 - net.prefixlen) // count
    return [str(net[(i * step << 64) + 1]) for i in range(count)]


def forwarded(address: str) -> tuple[dict[str, str], dict[str, str]]:
    return {"X-Forwarded-For": address}, {"REMOTE_ADDR": PROXY}


def cast(app: Flask, client: FlaskClient, url: str, body: dict[str, Any],
         addresses: list[str]) -> list[int]:
    """A fresh reader from each address sends `body` to `url`; the statuses."""
    statuses = []
    with app.app_context():
        identity = get_identity()
        tokens = [identity.mint_reader() for _ in addresses]
    for token, address in zip(tokens, addresses, strict=True):
        headers, environ = forwarded(address)
        response = client.put(url, json=body, headers={"X-Engage-Reader": token, **headers},
                              environ_base=environ)
        if response.status_code == 429:
            assert response.json["error"]["code"] == "throttled"
            assert 1 <= int(response.headers["Retry-After"]) <= WINDOW
        statuses.append(response.status_code)
    return statuses


def counts(client: FlaskClient, article: str) -> dict[str, int]:
    counted: dict[str, int] = client.get(f"/api/v1/articles/{article}/reactions").json["counts"]
    return counted


def test_documented_defaults() -> None:
    """What docs/api.md promises: a /48 moves an article by at most 200 votes in 10
    minutes; a /56 home has 120; an IPv4 address 60 and its /24 400."""
    assert WINDOW == 600
    assert (HOUSEHOLD, SITE_56, SITE_48, BLOCK_24) == (60, 120, 200, 400)
    for action in ("THROTTLE_VOTES", "CLICK_BUDGET", "READER_MINT_LIMIT"):
        for name, _, _ in WIDER_NETWORKS:
            assert network_setting(action, name) in DEFAULTS


def test_one_48_moves_an_article_by_its_budget_at_most(
    app: Flask, client: FlaskClient, article: str, store: Any, editor: dict[str, str]
) -> None:
    for n in range(800):  # 600 yes and 200 no from as many households, as reported
        reactions.vote(store, article, f"r{n}", f"h{n}", "yes" if n < 600 else "no")
    attack = sixty_fours("2001:db8:48::/48", 2000)
    # Spread over the /48's /56s, so no /56 budget binds before the /48's.
    per_56 = Counter(ipaddress.ip_network(f"{a}/56", strict=False) for a in attack)
    assert max(per_56.values()) < SITE_56
    statuses = cast(app, client, f"/api/v1/articles/{article}/reactions/mine",
                    {"choice": "no"}, attack)
    assert statuses.count(200) == SITE_48
    assert statuses.count(429) == 2000 - SITE_48
    assert counts(client, article) == {"yes": 600, "no": 200 + SITE_48}
    # Editors see the attack in the article's refused figures and on its page.
    assert refused(client, editor, article)["votes_throttled"] == 2000 - SITE_48
    assert sign_in(client, editor["Authorization"].split()[1]).status_code == 302
    page = client.get(f"/dashboard/articles/{article}").get_data(as_text=True)
    assert f'<td data-n="{2000 - SITE_48}">' in page
    assert f"{2000 - SITE_48} throttled" in page
    # Another /48 is untouched.
    assert cast(app, client, f"/api/v1/articles/{article}/reactions/mine",
                {"choice": "no"}, ["2001:db8:49::1"]) == [200]


def test_voters_in_different_48s_are_all_counted(
    app: Flask, client: FlaskClient, article: str, editor: dict[str, str]
) -> None:
    voters = [f"2001:db8:{n:x}::1" for n in range(2000)]
    statuses = cast(app, client, f"/api/v1/articles/{article}/reactions/mine",
                    {"choice": "yes"}, voters)
    assert statuses == [200] * 2000
    assert counts(client, article) == {"yes": 2000, "no": 0}
    assert refused(client, editor, article)["votes_throttled"] == 0


def test_a_56_household_has_its_own_budget(
    app: Flask, client: FlaskClient, article: str
) -> None:
    home = sixty_fours("2001:db8:56::/56", 256)  # every /64 of the home
    url = f"/api/v1/articles/{article}/reactions/mine"
    statuses = cast(app, client, url, {"choice": "yes"}, home)
    assert statuses.count(200) == SITE_56
    # One of its /64s alone stops at the household budget.
    lan = [f"2001:db8:57::{n:x}" for n in range(1, HOUSEHOLD + 11)]
    assert cast(app, client, url, {"choice": "yes"}, lan).count(200) == HOUSEHOLD
    # The next /56 of the same /48 is another home, with its own budget.
    assert cast(app, client, url, {"choice": "yes"}, ["2001:db8:56:100::1"]) == [200]
    assert counts(client, article)["yes"] == SITE_56 + HOUSEHOLD + 1


def test_one_48_moves_a_poll_by_its_budget_at_most(
    app: Flask, client: FlaskClient, article: str, editor: dict[str, str]
) -> None:
    poll = client.post("/api/v1/polls", headers=editor, json={
        "question": "Ready?", "options": ["Yes", "No"], "article": article,
    }).json
    url = f"/api/v1/polls/{poll['id']}/votes/mine"
    body = {"options": [poll["options"][1]["id"]]}
    statuses = cast(app, client, url, body, sixty_fours("2001:db8:48::/48", 2000))
    assert statuses.count(200) == SITE_48
    assert client.get(f"/api/v1/polls/{poll['id']}").json["results"]["total"] == SITE_48
    assert refused(client, editor, article)["poll_votes_throttled"] == 2000 - SITE_48
    voters = [f"2001:db8:{0x1000 + n:x}::1" for n in range(300)]  # 300 other /48s
    assert cast(app, client, url, body, voters) == [200] * 300


def follow(client: FlaskClient, link_id: str, address: str) -> None:
    headers, environ = forwarded(address)
    response = client.get(f"/r/{link_id}", headers={"User-Agent": CHROME, **headers},
                          environ_base=environ)
    assert response.status_code == 302
    assert response.headers["Location"] == LINKS[0]["url"]


def test_clicks_have_network_budgets(
    client: FlaskClient, article: str, editor: dict[str, str], store: Any
) -> None:
    links = client.put(f"/api/v1/articles/{article}/links", json=LINKS, headers=editor).json
    link = links["links"][0]["id"]

    def clicks() -> int:
        stats = store.redis.hget(store.keys.article_linkstats(article), f"{link}:clicks")
        return int(stats or 0)

    per_56 = DEFAULTS["CLICK_BUDGET_V6_56"]
    per_48 = DEFAULTS["CLICK_BUDGET_V6_48"]
    for address in sixty_fours("2001:db8:56::/56", 50):  # 50 of one /56, as reported
        follow(client, link, address)
    assert clicks() == per_56
    follow(client, link, "2001:db8:56::1")  # a /64 already counted: a repeat
    assert refused(client, editor, article)["clicks_throttled"] == 50 - per_56
    assert refused(client, editor, article)["clicks_duplicate"] == 1
    for address in sixty_fours("2001:db8:48::/48", 200):
        follow(client, link, address)
    assert clicks() == per_56 + per_48
    for n in range(1, 31):  # readers of other /48s are all counted
        follow(client, link, f"2001:db8:{n:x}::1")
    assert clicks() == per_56 + per_48 + 30
    per_24 = DEFAULTS["CLICK_BUDGET_V4_24"]
    for n in range(256):
        follow(client, link, f"198.51.100.{n}")
    assert clicks() == per_56 + per_48 + 30 + per_24
    assert refused(client, editor, article)["clicks_throttled"] == \
        50 - per_56 + 200 - per_48 + 256 - per_24


def test_ipv4_an_address_is_many_homes_and_its_24_has_a_budget(
    app: Flask, client: FlaskClient, article: str, editor: dict[str, str]
) -> None:
    """Carrier NAT puts many readers on one address: each address keeps the household's
    budget, and its /24 a budget above that, twice the /48's."""
    url = f"/api/v1/articles/{article}/reactions/mine"
    shared = cast(app, client, url, {"choice": "yes"}, ["203.0.113.9"] * (HOUSEHOLD + 5))
    assert shared.count(200) == HOUSEHOLD
    # Two readers on each address of the /24 (one already spent its budget above).
    block = [f"203.0.113.{n}" for n in range(256) if n != 9] * 2
    spread = cast(app, client, url, {"choice": "yes"}, block)
    assert spread.count(200) == BLOCK_24 - HOUSEHOLD
    assert counts(client, article)["yes"] == BLOCK_24
    # The next /24 is someone else.
    assert cast(app, client, url, {"choice": "yes"}, ["203.0.114.9"]) == [200]
    assert refused(client, editor, article)["votes_throttled"] == 5 + len(block) - (
        BLOCK_24 - HOUSEHOLD)


def mint(client: FlaskClient, address: str) -> Any:
    headers, environ = forwarded(address)
    return client.post("/api/v1/readers", headers=headers, environ_base=environ)


def test_minting_has_network_budgets(redis_server: Any, tmp_path: Any) -> None:
    redis_server.client().flushall()
    app = make_app(redis_server.url, tmp_path, TRUSTED_PROXIES=[f"{PROXY}/32"],
                   READER_MINT_LIMIT="3 per minute", READER_MINT_LIMIT_V6_56="5 per minute",
                   READER_MINT_LIMIT_V6_48="8 per minute",
                   READER_MINT_LIMIT_V4_24="6 per minute")
    client = app.test_client()

    def minted(addresses: list[str]) -> int:
        return [mint(client, a).status_code for a in addresses].count(201)

    assert minted(["2001:db8:64::1"] * 10) == 3
    assert minted(sixty_fours("2001:db8:56::/56", 20)) == 5
    assert minted(sixty_fours("2001:db8:48::/48", 40)) == 8
    assert minted([f"192.0.2.{n}" for n in range(1, 40)]) == 6
    # The refusal is the one JSON 429 shape, with Retry-After.
    refused_mint = mint(client, "2001:db8:48:ff00::1")
    assert refused_mint.status_code == 429
    assert refused_mint.json["error"]["code"] == "rate_limited"
    assert int(refused_mint.headers["Retry-After"]) >= 1
    # Other networks mint on.
    assert minted(["2001:db8:49::1", "192.0.3.1"]) == 2


def test_a_network_budget_is_never_below_its_groups(redis_server: Any, tmp_path: Any) -> None:
    """An office behind one IPv4 address whose budget was raised is not cut back by its
    /24's smaller one: a network holds the group."""
    redis_server.client().flushall()
    app = make_app(redis_server.url, tmp_path, THROTTLE_VOTES=12, THROTTLE_VOTES_V4_24=5,
                   READER_MINT_LIMIT="9 per minute", READER_MINT_LIMIT_V4_24="2 per minute")
    client = app.test_client()
    editor = {"Authorization": "Bearer " + _editor_token(app)}
    assert client.put("/api/v1/articles/office", json={
        "title": "Office", "url": "https://news.example.com/office", "section": "S",
        "published_at": "2026-01-08T09:00:00Z", "tags": []}, headers=editor).status_code == 201
    office = {"REMOTE_ADDR": "198.51.100.20"}
    assert [client.post("/api/v1/readers", environ_base=office).status_code
            for _ in range(10)].count(201) == 9
    with app.app_context():
        tokens = [get_identity().mint_reader() for _ in range(15)]
    statuses = [client.put("/api/v1/articles/office/reactions/mine", json={"choice": "yes"},
                           headers={"X-Engage-Reader": t}, environ_base=office).status_code
                for t in tokens]
    assert statuses.count(200) == 12
    # The /24's own budget still holds its other addresses to the group's, 12 in all.
    neighbour = {"REMOTE_ADDR": "198.51.100.21"}
    with app.app_context():
        token = get_identity().mint_reader()
    assert client.put("/api/v1/articles/office/reactions/mine", json={"choice": "yes"},
                      headers={"X-Engage-Reader": token},
                      environ_base=neighbour).status_code == 429


def _editor_token(app: Flask) -> str:
    from engage.store import get_store, tokens

    with app.app_context():
        return tokens.create(get_store(), "editor", "e")[0]


def test_wider_networks_are_those_above_the_group() -> None:
    identity = Identity("budget-test-secret-0123456789", [])
    assert identity.networks("2001:db8:1:2::5")[1] == {
        "v6_56": "2001:db8:1::/56", "v6_48": "2001:db8:1::/48"}
    assert identity.networks("::ffff:203.0.113.5")[1] == {"v4_24": "203.0.113.0/24"}
    assert identity.networks("/run/engage.sock")[1] == {}
    # A household configured as a /56 leaves the /48 above it; an IPv4 /24 group, nothing.
    wide = Identity("budget-test-secret-0123456789", [], prefix_v4=24, prefix_v6=56)
    assert wide.networks("2001:db8:1:2::5")[1] == {"v6_48": "2001:db8:1::/48"}
    assert wide.networks("203.0.113.5")[1] == {}

    def fetch(day: str) -> bytes:
        return b"k" * 32

    own, hashes = identity.address_hashes("2001:db8:1:2::5", "20260101", fetch)
    assert len({own, *hashes.values()}) == 3
    assert all("2001" not in h and len(h) == 12 for h in hashes.values())
    # Every /64 of the /56 shares the /56's hash, and none the /64's.
    assert identity.address_hashes("2001:db8:1:ff::9", "20260101", fetch)[1] == hashes
