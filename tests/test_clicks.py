"""Clicks and impressions editors can trust: one click per address group per link per
window, no prefetches, no non-human agents, impressions capped; what was refused shows
in the article's stats."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage import metrics
from engage.store import links
from engage.web import agents
from tests.conftest import new_reader

LINKS = [
    {"title": "Policy Link", "url": "https://news.example.com/policy/korea-china-relations"},
    {"title": "Buoys explained", "url": "https://news.example.com/diplomacy/buoys"},
]
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
HUMANS = [
    CHROME, FIREFOX,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 "
    "[FB_IAB/FB4A;FBAV/441.0.0.33.113;]",
]
# HTTP libraries, headless browsers, API tools, link unfurlers, mail scanners, crawlers.
NOT_HUMAN = [
    "axios/1.6.7",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Python/3.11 aiohttp/3.9.3",
    "python-requests/2.31.0",
    "python-httpx/0.27.0",
    "curl/8.5.0",
    "Wget/1.21.4",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36",
    "PostmanRuntime/7.36.1",
    "http.rb/5.1.1 (Mastodon/4.2.1; +https://mastodon.social/)",
    "Mastodon/4.2.1 (http.rb/5.1.1; +https://mastodon.social/) Bot",
    "Mozilla/5.0 (compatible; Pleroma/2.5.0; +https://pleroma.example)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
    "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
    "Microsoft Office Existence Discovery",
    "Outlook-iOS/709.2226530.prod.iphone (3.24.1)",
    "Outlook-Android/2.0",
    "ProofpointURLDefense/1.0",
    "Mimecast URL protect",
    "Barracuda Sentinel (EE)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Twitterbot/1.0",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Discordbot/2.0",
    "WhatsApp/2.23.20.0",
    "TelegramBot (like TwitterBot)",
    "undici",
    "Deno/1.40.0",
    "GuzzleHttp/7",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; "
    "+https://openai.com/gptbot)",
    "",
    "Mozilla/5.0 (" + "a" * 600,
]
PREFETCHES = [
    {"Sec-Purpose": "prefetch"},
    {"Sec-Purpose": "prefetch;prerender"},
    {"Purpose": "prefetch"},
    {"X-Moz": "prefetch"},
    {"X-Purpose": "preview"},
]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"THROTTLE_VOTES": 1000, "READER_MINT_LIMIT": "1000 per minute"}


@pytest.fixture
def link(client: FlaskClient, editor: dict[str, str], article: str) -> dict[str, Any]:
    response = client.put(f"/api/v1/articles/{article}/links", json=LINKS, headers=editor)
    assert response.status_code == 200, response.json
    first: dict[str, Any] = response.json["links"][0]
    return first


def follow(client: FlaskClient, link_id: str, agent: str = CHROME,
           address: str = "203.0.113.7", **headers: str) -> Any:
    response = client.get(f"/r/{link_id}", headers={"User-Agent": agent, **headers},
                          environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == LINKS[0]["url"]
    return response


def clicks(store: Any, article: str, link_id: str) -> int:
    return int(store.redis.hget(store.keys.article_linkstats(article), f"{link_id}:clicks") or 0)


def refused(client: FlaskClient, editor: dict[str, str], article: str) -> dict[str, int]:
    """The refused counters of the article's stats, summed over the series."""
    response = client.get(f"/api/v1/articles/{article}/stats", headers=editor)
    assert response.status_code == 200, response.json
    total: dict[str, int] = {}
    for point in response.json["points"]:
        for name, n in point["refused"].items():
            total[name] = total.get(name, 0) + n
    return total


def refused_metric(reason: str) -> float:
    value = metrics.app_registry().get_sample_value("engage_link_events_refused_total",
                                                    {"reason": reason})
    return value or 0.0


def test_a_thousand_follows_from_one_client_count_one_click(
    client, editor, article, link, store
):
    before = refused_metric("click_duplicate")
    for _ in range(1000):
        follow(client, link["id"])
    assert clicks(store, article, link["id"]) == 1
    assert refused_metric("click_duplicate") - before == 999
    events = [f["type"] for _, f in store.redis.xrange(store.keys.article_events(article))]
    assert events.count("link.click") == 1
    assert refused(client, editor, article)["clicks_duplicate"] == 999
    # Another address group, and another link from the first one, each count.
    follow(client, link["id"], FIREFOX, address="198.51.100.20")
    assert clicks(store, article, link["id"]) == 2


@pytest.mark.parametrize("app_config", [{"CLICK_WINDOW": 1}])
def test_the_window_ends_and_the_next_click_counts(client, article, link, store):
    follow(client, link["id"])
    follow(client, link["id"])
    assert clicks(store, article, link["id"]) == 1
    time.sleep(1.2)  # the window is a Redis TTL, kept by Redis's own clock
    follow(client, link["id"])
    assert clicks(store, article, link["id"]) == 2


def test_prefetches_are_redirected_but_never_counted(client, editor, article, link, store):
    for headers in PREFETCHES:
        follow(client, link["id"], **headers)
    assert clicks(store, article, link["id"]) == 0
    assert refused(client, editor, article)["clicks_prefetch"] == len(PREFETCHES)
    follow(client, link["id"])  # the reader's real click after a prefetch still counts
    assert clicks(store, article, link["id"]) == 1


def test_non_human_agents_are_redirected_but_never_counted(client, editor, article, link, store):
    assert len(NOT_HUMAN) >= 20
    for agent in NOT_HUMAN:
        follow(client, link["id"], agent)
    response = client.head(f"/r/{link['id']}", headers={"User-Agent": CHROME})
    assert response.status_code == 302
    assert clicks(store, article, link["id"]) == 0
    assert refused(client, editor, article)["clicks_bot"] == len(NOT_HUMAN) + 1
    events = [f["type"] for _, f in store.redis.xrange(store.keys.article_events(article))]
    assert "link.click" not in events


@pytest.mark.parametrize("agent", NOT_HUMAN)
def test_each_agent_is_not_human(agent):
    assert not agents.is_human_agent(agent)


@pytest.mark.parametrize("agent", HUMANS)
def test_browsers_are_human(agent):
    assert agents.is_human_agent(agent)


def test_browsers_from_other_addresses_each_count(client, article, link, store):
    for n, agent in enumerate(HUMANS):
        follow(client, link["id"], agent, address=f"192.0.2.{n + 1}")
    assert clicks(store, article, link["id"]) == len(HUMANS)


@pytest.mark.parametrize("app_config", [{"IMPRESSION_CAP": 3}])
def test_impressions_are_capped_per_address_group_and_link(client, editor, article, store):
    first, second = client.put(f"/api/v1/articles/{article}/links", json=LINKS,
                               headers=editor).json["links"]
    url = f"/api/v1/articles/{article}/links/impressions"
    counted = [client.post(url, json={"links": [first["id"], second["id"]]},
                           environ_base={"REMOTE_ADDR": "203.0.113.7"}).json["counted"]
               for _ in range(5)]
    assert counted == [2, 2, 2, 0, 0]
    other = client.post(url, json={"links": [first["id"]]},
                        environ_base={"REMOTE_ADDR": "198.51.100.20"})
    assert other.json == {"counted": 1}
    stats = {s["id"]: s["impressions"] for s in links.stats(store, article)}
    assert stats == {first["id"]: 4, second["id"]: 3}
    assert refused(client, editor, article)["impressions_over_cap"] == 4
    seen = store.keys.article_impressions_seen(article, "x")[:-1]
    ttls = [store.redis.ttl(k) for k in store.redis.scan_iter(seen + "*")]
    assert ttls and all(0 < ttl <= 3600 for ttl in ttls)


def test_refused_votes_are_counted_per_hour(client, editor, article, store):
    reader = new_reader(client)
    vote_url = f"/api/v1/articles/{article}/reactions/mine"
    assert client.put(vote_url, json={"choice": "yes"}, headers=reader).status_code == 200
    for _ in range(3):  # the same choice again: nothing changes, the repeat is seen
        assert client.put(vote_url, json={"choice": "yes"}, headers=reader).status_code == 200
    poll = client.post("/api/v1/polls", headers=editor, json={
        "question": "Should it?", "options": ["Yes", "No"], "article": article}).json
    poll_url = f"/api/v1/polls/{poll['id']}/votes/mine"
    for _ in range(2):
        assert client.put(poll_url, json={"options": ["o1"]}, headers=reader).status_code == 200
    totals = refused(client, editor, article)
    assert totals["votes_duplicate"] == 3 and totals["poll_votes_duplicate"] == 1
    assert totals["votes_throttled"] == 0


@pytest.mark.parametrize("app_config", [{"THROTTLE_VOTES": 2, "READER_MINT_LIMIT": "100/minute"}])
def test_throttled_votes_are_counted_per_hour(client, editor, article):
    vote_url = f"/api/v1/articles/{article}/reactions/mine"
    statuses = [client.put(vote_url, json={"choice": "yes"}, headers=new_reader(client))
                .status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    assert refused(client, editor, article)["votes_throttled"] == 3


def test_a_stored_url_the_server_cannot_send_is_a_json_404(client, editor, article, store):
    """Links stored before URLs were checked strictly must not break the redirect."""
    good = client.put(f"/api/v1/articles/{article}/links", json=LINKS[:1],
                      headers=editor).json["links"][0]
    raw = store.redis.get(store.keys.article_links(article))
    store.redis.set(store.keys.article_links(article),
                    raw.replace(LINKS[0]["url"], "https://example.com:99999/a"))
    response = client.get(f"/r/{good['id']}", headers={"User-Agent": CHROME})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert "Location" not in response.headers
