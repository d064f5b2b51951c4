"""Votes from where the widget cannot run: newsletter vote links (a confirmation page,
never the opening, counts), the widget's form without JavaScript, and AMP forms. All
count through the widget's one vote script, its one-vote key and its address budgets,
and record their channel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from engage.identity import get_identity
from engage.store import stats
from engage.timerange import Range
from tests.conftest import ARTICLE, new_reader
from tests.test_clicks import CHROME, FIREFOX, NOT_HUMAN, PREFETCHES
from tests.test_metrics import scrape, value

# Mail scanners (Office and Outlook's link checks, Proofpoint, Mimecast, Barracuda),
# link previewers and unfurlers (chat apps, social networks, fediverse servers), crawlers.
SCANNERS = NOT_HUMAN[11:31]
BROWSER = {"User-Agent": CHROME}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"THROTTLE_VOTES": 1000, "READER_MINT_LIMIT": "1000 per minute"}


def vote_links(client: FlaskClient, editor: dict[str, str], article: str,
               **query: Any) -> dict[str, Any]:
    response = client.get(f"/api/v1/articles/{article}/email-links", query_string=query,
                          headers=editor)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def path_for(url: str, recipient: str, tag: str = "{{recipient}}") -> str:
    """What the mailing tool sends a recipient: the link with its merge tag filled."""
    parts = urlsplit(url.replace(tag, recipient))
    return f"{parts.path}?{parts.query}"


def counts(client: FlaskClient, article: str) -> dict[str, int]:
    return dict(client.get(f"/api/v1/articles/{article}/reactions").json["counts"])


def channels(store: Any, article: str) -> dict[str, int]:
    now = store.now()
    series = stats.article_series(store, article, Range(now.replace(minute=0), now, "hour"))
    assert series is not None
    return {ch: sum(p["channels"][ch] for p in series["points"]) for ch in
            ("web", "email", "nojs", "amp")}


# -- newsletters -----------------------------------------------------------------------------
def test_email_links_need_an_editor_and_a_known_article(client, editor, reader, article):
    assert client.get(f"/api/v1/articles/{article}/email-links").status_code == 401
    assert client.get(f"/api/v1/articles/{article}/email-links",
                      headers=reader).status_code == 401
    response = client.get("/api/v1/articles/nope/email-links", headers=editor)
    assert response.status_code == 404
    for bad in ({"days": 0}, {"days": 366}, {"merge_tag": "a b"}, {"merge_tag": "a&b"}):
        response = client.get(f"/api/v1/articles/{article}/email-links", query_string=bad,
                              headers=editor)
        assert response.status_code == 422, bad


def test_email_links_are_one_per_choice_with_the_merge_tag(client, editor, article, clock):
    body = vote_links(client, editor, article, days=7, merge_tag="*|UNIQID|*")
    assert [link["choice"] for link in body["links"]] == ["yes", "no"]
    assert body["merge_tag"] == "*|UNIQID|*"
    assert all(link["url"].startswith("/v/")
               and link["url"].endswith("?r=*|UNIQID|*") for link in body["links"])
    assert body["expires_at"] == stats.iso((clock() + timedelta(days=7)).replace(microsecond=0))


def test_opening_a_link_never_counts_scanners_heads_and_prefetches_included(
        client, editor, article, store):
    url = vote_links(client, editor, article)["links"][0]["url"]
    path = path_for(url, "subscriber-1")
    assert len(SCANNERS) == 20 and {"ProofpointURLDefense/1.0", "Outlook-Android/2.0",
                                    "Discordbot/2.0"} < set(SCANNERS)
    for agent in SCANNERS:
        page = client.get(path, headers={"User-Agent": agent})
        assert page.status_code == 200 and b"Tap to confirm" in page.data
        assert client.head(path, headers={"User-Agent": agent}).status_code == 200
        refused = client.post(path, headers={"User-Agent": agent})
        assert refused.status_code == 403 and b"Not counted" in refused.data
    for headers in PREFETCHES:
        assert client.get(path, headers={**BROWSER, **headers}).status_code == 200
        assert client.post(path, headers={**BROWSER, **headers}).status_code == 403
    assert client.get(path, headers=BROWSER).status_code == 200
    assert client.head(path, headers=BROWSER).status_code == 200
    assert counts(client, article) == {"yes": 0, "no": 0}
    assert store.redis.xlen(store.keys.article_events(article)) == 1  # article.created


def test_confirming_counts_once_per_recipient_and_moves_on_another_device(
        client, editor, article, store):
    yes, no = (link["url"] for link in vote_links(client, editor, article)["links"])
    confirmed = client.post(path_for(yes, "sub-1"), headers=BROWSER)
    assert confirmed.status_code == 303
    page = client.get(confirmed.headers["Location"], headers=BROWSER)
    assert b"is counted" in page.data and b"Change my vote" in page.data
    assert b'data-choice="yes">1<' in page.data
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    # Again, and from another device (another browser, another address): still one vote.
    client.post(path_for(yes, "sub-1"), headers=BROWSER)
    client.post(path_for(yes, "sub-1"), headers={"User-Agent": FIREFOX},
                environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert counts(client, article) == {"yes": 1, "no": 0}
    # The same recipient's "no" link, from yet another device, moves that vote.
    client.post(path_for(no, "sub-1"), headers={"User-Agent": FIREFOX},
                environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert counts(client, article) == {"yes": 0, "no": 1}
    # Another recipient is another reader; a widget reader is another again.
    client.post(path_for(yes, "sub-2"), headers=BROWSER)
    client.put(f"/api/v1/articles/{article}/reactions/mine", json={"choice": "yes"},
               headers=new_reader(client))
    assert counts(client, article) == {"yes": 2, "no": 1}
    kinds = [(f["type"], f["channel"]) for _, f in
             store.redis.xrange(store.keys.article_events(article)) if "channel" in f]
    assert kinds == [("reaction.vote", "email"), ("reaction.change", "email"),
                     ("reaction.vote", "email"), ("reaction.vote", "web")]
    assert channels(store, article) == {"web": 1, "email": 3, "nojs": 0, "amp": 0}


def test_links_for_a_later_issue_keep_the_recipients_one_vote(client, editor, article, clock):
    first = vote_links(client, editor, article)["links"][0]["url"]
    clock.advance(3600)
    later = vote_links(client, editor, article, days=3)["links"][1]["url"]
    assert first != later
    client.post(path_for(first, "sub-1"), headers=BROWSER)
    client.post(path_for(later, "sub-1"), headers=BROWSER)
    assert counts(client, article) == {"yes": 0, "no": 1}


def test_expired_tampered_or_unfilled_links_get_a_clear_page(client, editor, article, clock):
    url = vote_links(client, editor, article, days=1)["links"][0]["url"]
    path = path_for(url, "sub-1")
    token = path.split("/")[2]
    tampered = [
        path.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB")),
        path.replace(token, token[:10]), path.replace(token, "x"),
        path.replace(token, "%00%ff"),
    ]
    for bad in tampered:
        for method in (client.get, client.post):
            response = method(bad, headers=BROWSER)
            assert response.status_code == 400, bad
            assert response.mimetype == "text/html"
            assert b"not valid" in response.data
    for bad in (path.split("?")[0], path.split("?")[0] + "?r=", path.split("?")[0]
                + "?r=" + "x" * 201, path.split("?")[0] + "?r=%0a"):
        response = client.get(bad, headers=BROWSER)
        assert response.status_code == 400 and b"recipient" in response.data, bad
    response = client.get(path.replace("/yes?", "/maybe?"), headers=BROWSER)
    assert response.status_code == 422 and b"Choose one of" in response.data
    clock.advance(86400)
    for method in (client.get, client.post):
        response = method(path, headers=BROWSER)
        assert response.status_code == 410 and b"expired" in response.data
    assert counts(client, article) == {"yes": 0, "no": 0}


def test_a_throttled_vote_and_an_unknown_article_are_pages(client, editor, article, app,
                                                          clock):
    url = vote_links(client, editor, article)["links"][0]["url"]
    app.config["THROTTLE_VOTES"] = 1
    before = scrape(client)
    assert client.post(path_for(url, "a"), headers=BROWSER).status_code == 303
    throttled = client.post(path_for(url, "b"), headers=BROWSER)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert throttled.mimetype == "text/html" and b"Too many votes" in throttled.data
    after = scrape(client)  # counted as the widget's votes are
    for name, labels in (("engage_votes_accepted_total", {"kind": "reaction"}),
                         ("engage_votes_rejected_total", {"kind": "reaction",
                                                          "reason": "throttled"})):
        assert value(after, name, **labels) - value(before, name, **labels) == 1
    with app.app_context():
        token = get_identity().sign_vote_link("no-such-article", int(clock().timestamp()) + 60)
    for method in (client.get, client.post):
        response = method(f"/v/{token}/yes?r=a", headers=BROWSER)
        assert response.status_code == 404 and response.mimetype == "text/html"
    assert counts(client, article) == {"yes": 1, "no": 0}


# -- the widget's form without JavaScript ------------------------------------------------------
def form_vote(client: FlaskClient, article: str, choice: str, next_url: str | None = None,
              **headers: str) -> Any:
    data = {"choice": choice}
    if next_url is not None:
        data["next"] = next_url
    return client.post(f"/vote/{article}", data=data, headers={**BROWSER, **headers})


def test_the_form_counts_and_returns_to_the_registered_url_only(client, article, store):
    response = form_vote(client, article, "yes", ARTICLE["url"])
    assert response.status_code == 303
    assert response.headers["Location"] == ARTICLE["url"]
    cookie = client.get_cookie("engage_reader", path="/vote/")
    assert cookie is not None and cookie.http_only
    # The same browser (its cookie) moves its one vote.
    assert form_vote(client, article, "no").headers["Location"] == ARTICLE["url"]
    assert counts(client, article) == {"yes": 0, "no": 1}
    for outside in ("https://evil.example/", "//evil.example", "/dashboard",
                    ARTICLE["url"] + "?x=1", ARTICLE["url"] + "#x", "/demo/" + article,
                    "javascript:alert(1)"):
        refused = form_vote(client, article, "yes", outside)
        assert refused.status_code == 400, outside
        assert "Location" not in refused.headers
    assert counts(client, article) == {"yes": 0, "no": 1}
    assert channels(store, article)["nojs"] == 2


def test_the_form_refuses_other_sites_agents_and_bad_choices(client, article):
    other = form_vote(client, article, "yes", Origin="https://evil.example")
    assert other.status_code == 403
    assert form_vote(client, article, "yes", Origin="https://news.example.com").status_code == 303
    assert form_vote(client, article, "maybe").status_code == 422
    for agent in SCANNERS[:5]:
        assert form_vote(client, article, "no", **{"User-Agent": agent}).status_code == 403
    assert form_vote(client, article, "no", **PREFETCHES[0]).status_code == 403
    assert client.post("/vote/nope", data={"choice": "yes"}, headers=BROWSER).status_code == 404
    assert counts(client, article) == {"yes": 1, "no": 0}


def test_the_form_spends_the_same_budgets(client, article, app):
    app.config["THROTTLE_VOTES"] = 1
    assert form_vote(client, article, "yes").status_code == 303
    client.delete_cookie("engage_reader", path="/vote/")
    refused = form_vote(client, article, "yes")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert counts(client, article) == {"yes": 1, "no": 0}


# -- AMP ---------------------------------------------------------------------------------------
PAGE = "https://news.example.com"
CACHE = "https://news-example-com.cdn.ampproject.org"


def test_amp_form_votes_with_amp_cors_headers(client, article, store):
    for origin in (PAGE, CACHE):
        response = client.post(f"/vote/{article}/amp?__amp_source_origin={PAGE}",
                               data={"choice": "yes"}, headers={**BROWSER, "Origin": origin})
        assert response.status_code == 200, response.data
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["AMP-Access-Control-Allow-Source-Origin"] == PAGE
        assert "AMP-Access-Control-Allow-Source-Origin" in response.headers[
            "Access-Control-Expose-Headers"]
        assert response.json["items"][0]["mine"] == "yes"
    # The cookie kept the reader: one vote.
    assert counts(client, article) == {"yes": 1, "no": 0}
    listed = client.get(f"/vote/{article}/amp?__amp_source_origin={PAGE}",
                        headers={"Origin": CACHE})
    assert listed.status_code == 200 and listed.json["items"][0]["counts"] == {"yes": 1, "no": 0}
    assert channels(store, article)["amp"] == 1


def test_amp_cache_origins_are_named_as_the_caches_name_them(client, editor):
    # Expected names as @ampproject/toolbox-cache-url 2.10.1 builds them.
    url = "https://my-news.example.co.uk/a"
    client.put("/api/v1/articles/hyphen", json={**ARTICLE, "url": url}, headers=editor)
    cache = "https://0-my--news-example-co-uk-0.cdn.ampproject.org"
    for origin, status in ((cache, 200), ("https://my--news-example-co-uk.cdn.ampproject.org",
                                          403)):
        response = client.get("/vote/hyphen/amp?__amp_source_origin=https://my-news.example.co.uk",
                              headers={"Origin": origin})
        assert response.status_code == status, origin


def test_amp_refuses_other_origins(client, article):
    for source, origin in ((PAGE, "https://evil.example"), ("https://evil.example", None),
                           ("", PAGE), (PAGE, "https://evil-example.cdn.ampproject.org")):
        response = client.post(f"/vote/{article}/amp", query_string={
            "__amp_source_origin": source}, data={"choice": "yes"},
            headers={**BROWSER, **({"Origin": origin} if origin else {})})
        assert response.status_code == 403, (source, origin)
        assert response.json["error"]["code"] == "forbidden"
        assert "Access-Control-Allow-Origin" not in response.headers
    assert counts(client, article) == {"yes": 0, "no": 0}


# -- channels ----------------------------------------------------------------------------------
def test_the_channel_split_matches_the_events(client, editor, article, store, desk):
    url = vote_links(client, editor, article)["links"][1]["url"]
    client.post(path_for(url, "s1"), headers=BROWSER)
    form_vote(client, article, "yes")
    client.post(f"/vote/{article}/amp?__amp_source_origin={PAGE}", data={"choice": "no"},
                headers={**BROWSER, "Origin": PAGE})
    for _ in range(2):
        client.put(f"/api/v1/articles/{article}/reactions/mine", json={"choice": "no"},
                   headers=new_reader(client))
    from_events: dict[str, int] = {}
    for _, fields in store.redis.xrange(store.keys.article_events(article)):
        if fields["type"] in ("reaction.vote", "reaction.change"):
            from_events[fields["channel"]] = from_events.get(fields["channel"], 0) + 1
    assert from_events == {"email": 1, "nojs": 1, "amp": 1, "web": 2}
    assert channels(store, article) == {"web": 2, "email": 1, "nojs": 1, "amp": 1}
    page = desk.get(f"/dashboard/articles/{article}")
    for channel, n in from_events.items():
        assert f'data-channel="{channel}">{n}<'.encode() in page.data


def test_the_dashboard_button_gives_the_apis_links(client, desk, editor, article, clock):
    page = desk.get(f"/dashboard/articles/{article}")
    assert b'name="merge_tag" value="{{recipient}}"' in page.data
    page = desk.get(f"/dashboard/articles/{article}?merge_tag=%25recipient.id%25&days=3")
    assert page.status_code == 200
    api = vote_links(client, editor, article, merge_tag="%recipient.id%", days=3)
    for link in api["links"]:
        assert f'value="{link["url"]}"'.encode() in page.data
    path = path_for(api["links"][0]["url"], "sub-9", "%recipient.id%")
    assert client.post(path, headers=BROWSER).status_code == 303
    assert counts(client, article) == {"yes": 1, "no": 0}
    assert desk.get(f"/dashboard/articles/{article}?merge_tag=a+b").status_code == 422
