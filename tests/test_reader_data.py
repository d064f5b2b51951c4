"""Readers own their data: export, erasure, token lifetime and retention (issue 26)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage.config import ConfigError, load_config
from engage.store import aggregates, readers
from tests.conftest import ARTICLE, new_reader
from tests.test_articles import assert_error
from tests.test_ballot import BROWSER, path_for, vote_links
from tests.test_clicks import LINKS
from tests.test_polls import create, put_vote
from tests.test_privacy import everything_in

DATA = "/api/v1/readers/me/data"
RENEW = "/api/v1/readers/renew"
IDS = ("a-one", "a-two", "a-three")


@pytest.fixture
def site(client: FlaskClient, editor: dict[str, str]) -> dict[str, Any]:
    for article_id in IDS:
        assert client.put(f"/api/v1/articles/{article_id}", json=ARTICLE,
                          headers=editor).status_code == 201
    polls = [create(client, editor, article="a-one"), create(client, editor, multiple=True)]
    links = client.put("/api/v1/articles/a-two/links", json=LINKS, headers=editor).json
    return {"polls": polls, "links": [link["id"] for link in links["links"]]}


def act(client: FlaskClient, site: dict[str, Any], reader: dict[str, str],
        address: str = "198.51.100.7") -> None:
    """Three reactions (one with a reason), two poll answers and two link clicks, the
    clicks as the widget sends them for a reader holding a token (from `address`: a
    click counts once per address group)."""
    for article_id, body in zip(IDS, ({"choice": "yes"}, {"choice": "no", "reason": "outdated"},
                                      {"choice": "yes"}), strict=True):
        response = client.put(f"/api/v1/articles/{article_id}/reactions/mine", json=body,
                              headers=reader)
        assert response.status_code == 200, response.json
    first, second = site["polls"]
    assert put_vote(client, first["id"], reader, [first["options"][0]["id"]]).status_code == 200
    assert put_vote(client, second["id"], reader,
                    [o["id"] for o in second["options"][:2]]).status_code == 200
    for link in site["links"]:
        response = client.post(f"/r/{link}", data={"reader": reader["X-Engage-Reader"]},
                               headers=BROWSER, environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 303 and response.headers["Location"].startswith(
            "https://news.example.com/")


def snapshot(client: FlaskClient, site: dict[str, Any], store: Any) -> dict[str, Any]:
    out: dict[str, Any] = {a: client.get(f"/api/v1/articles/{a}/reactions").json["counts"]
                           for a in IDS}
    for poll in site["polls"]:
        out[poll["id"]] = client.get(f"/api/v1/polls/{poll['id']}").json["results"]
    redis = store.redis
    # Every all-time figure, ranking and hour and day series (rolling windows move on
    # with the clock, whatever the readers do).
    for key in sorted(redis.scan_iter(match=store.keys.agg("*"))):
        kind = redis.type(key)
        if ":w:" in key:
            continue
        if kind == "zset":
            out[key] = redis.zrange(key, 0, -1, withscores=True)
        elif kind == "hash" and not key.endswith(":seen"):
            out[key] = redis.hgetall(key)
    return out


def test_export_lists_every_action_with_times(client: FlaskClient, site: dict[str, Any],
                                              reader: dict[str, str]) -> None:
    act(client, site, reader)
    body = client.get(DATA, headers=reader)
    assert body.status_code == 200 and body.headers["Cache-Control"] == "private, no-store"
    data = body.json
    assert [(r["article"], r["choice"], r["reason"]) for r in data["reactions"]] == [
        ("a-one", "yes", None), ("a-three", "yes", None), ("a-two", "no", "outdated")]
    assert sorted(len(p["options"]) for p in data["poll_answers"]) == [1, 2]
    assert sorted((c["article"], c["link"]) for c in data["clicks"]) == sorted(
        ("a-two", link) for link in site["links"])
    assert sum(len(data[kind]) for kind in ("reactions", "poll_answers", "clicks")) == 7
    for item in data["reactions"] + data["poll_answers"]:
        assert len(item["history"]) == 1 and item["history"][0]["ts_ms"] > 0
    for item in data["reactions"] + data["poll_answers"] + data["clicks"]:
        assert item["at"].endswith("+00:00")
    # Another reader's export holds nothing of the first's.
    assert client.get(DATA, headers=new_reader(client)).json == {
        "reactions": [], "poll_answers": [], "clicks": []}


def test_a_click_is_credited_only_through_a_token_in_the_body(
    client: FlaskClient, site: dict[str, Any], reader: dict[str, str], store: Any,
) -> None:
    link = site["links"][0]
    # A plain click (no token), or one with a token too old or forged, counts uncredited.
    assert client.get(f"/r/{link}", headers=BROWSER).status_code == 302
    forged = client.post(f"/r/{link}", data={"reader": "forged.token"}, headers=BROWSER,
                         environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert forged.status_code == 303
    assert client.get(DATA, headers=reader).json["clicks"] == []
    # A click not counted (the address group's second in the window) is not credited.
    client.post(f"/r/{link}", data={"reader": reader["X-Engage-Reader"]}, headers=BROWSER)
    assert client.get(DATA, headers=reader).json["clicks"] == []
    assert store.redis.hget(store.keys.article_linkstats("a-two"), f"{link}:clicks") == "2"


def test_erasure_withdraws_exactly_and_leaves_no_trace(
    client: FlaskClient, site: dict[str, Any], store: Any, redis_server: Any,
    catch_up: Any,
) -> None:
    other = new_reader(client)
    act(client, site, other, address="203.0.113.9")
    catch_up()
    before = snapshot(client, site, store)
    reader = new_reader(client)
    act(client, site, reader)
    catch_up()
    acted = snapshot(client, site, store)
    token = reader["X-Engage-Reader"]
    with client.application.app_context():
        from engage.identity import get_identity
        reader_id, reader_hash, _ = get_identity().read_token(token)
    response = client.delete(DATA, headers=reader)
    assert response.status_code == 200 and response.json == {"erased": 7}
    catch_up()

    def standing() -> dict[str, Any]:
        # `cast` counts votes as they were cast: a vote cast and later withdrawn was cast.
        return {k: v for k, v in snapshot(client, site, store).items()
                if not k.endswith(":cast")}

    def clicks(figures: dict[str, Any], only: bool) -> dict[str, Any]:
        """The click figures (`only`), or all the others."""
        out = {}
        for key, value in figures.items():
            if "click" in key:
                if only:
                    out[key] = value
            elif isinstance(value, dict):
                part = {f: v for f, v in value.items() if ("click" in f) == only}
                if part:
                    out[key] = part
            elif not only:
                out[key] = value
        return out

    # The votes drop by exactly the reader's; their clicks stay counted, credited to no one.
    expected = {k: v for k, v in before.items() if not k.endswith(":cast")}
    assert clicks(standing(), False) == clicks(expected, False)
    assert clicks(standing(), True) == clicks(acted, True) != clicks(before, True)
    # The figures rebuilt from the streams agree with the live ones.
    aggregates.rebuild(store)
    assert clicks(standing(), False) == clicks(expected, False)
    assert clicks(standing(), True) == clicks(acted, True)
    raw = redis_server.client(decode_responses=False)
    trace = b"\n".join(everything_in(raw))
    for needle in (token.encode(), reader_hash.encode(), reader_id):
        assert needle not in trace
    assert_error(client.get(DATA, headers=reader), 401, "invalid_reader")
    assert_error(client.put("/api/v1/articles/a-one/reactions/mine", json={"choice": "no"},
                            headers=reader), 401, "invalid_reader")
    assert_error(client.post(RENEW, headers=reader), 401, "invalid_reader")
    # The other reader's votes stand.
    assert client.get("/api/v1/articles/a-two/reactions", headers=other).json["mine"] == "no"


def test_bad_tokens_get_clear_errors_and_change_nothing(
    client: FlaskClient, site: dict[str, Any], store: Any, reader: dict[str, str],
) -> None:
    act(client, site, reader)
    before = sorted(store.redis.scan_iter())
    for headers in ({}, {"X-Engage-Reader": "forged.token"},
                    {"X-Engage-Reader": reader["X-Engage-Reader"] + "x"}):
        for method in (client.get, client.delete):
            assert_error(method(DATA, headers=headers), 401, "invalid_reader")
        assert_error(client.post(RENEW, headers=headers), 401, "invalid_reader")
    assert sorted(store.redis.scan_iter()) == before
    assert len(client.get(DATA, headers=reader).json["reactions"]) == 3


def test_exports_and_erasures_are_budgeted_per_address(
    client: FlaskClient, store: Any, reader: dict[str, str],
) -> None:
    """Each brings the aggregator up to date over every stream: a stranger may not ask
    for that at will. The budget is the address's, whoever's token it sends."""
    from engage.store import budgets

    for _ in range(budgets.READER_DATA_REQUESTS):
        assert client.get(DATA, headers=reader).status_code == 200
    refused = client.get(DATA, headers=reader)
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    other = {"X-Engage-Reader": client.post("/api/v1/readers").json["reader"]}
    assert_error(client.delete(DATA, headers=other), 429, "rate_limited")
    assert client.get(DATA, headers=other, environ_base={
        "REMOTE_ADDR": "198.51.100.7"}).status_code == 200  # another address: its own


def test_an_expired_token_is_renewed_keeping_the_votes(
    client: FlaskClient, site: dict[str, Any], clock: Any, reader: dict[str, str],
) -> None:
    vote = "/api/v1/articles/a-one/reactions/mine"
    start = clock()
    assert client.put(vote, json={"choice": "yes"}, headers=reader).status_code == 200
    clock.advance(timedelta(days=31).total_seconds())
    assert_error(client.put(vote, json={"choice": "yes"}, headers=reader), 401,
                 "reader_expired")
    renewed = client.post(RENEW, headers=reader)
    assert renewed.status_code == 201
    fresh = {"X-Engage-Reader": renewed.json["reader"]}
    clock.set(start)  # the new token is issued at the real time: judge it there
    again = client.put(vote, json={"choice": "yes"}, headers=fresh)
    assert again.status_code == 200, again.json
    assert again.json["mine"] == "yes" and again.json["counts"]["yes"] == 1
    # The old token cannot be replayed, for voting or for another renewal.
    assert_error(client.post(RENEW, headers=reader), 401, "invalid_reader")
    assert_error(client.get(DATA, headers=reader), 401, "invalid_reader")
    # Past the retention a token cannot be renewed either.
    clock.advance(timedelta(days=366).total_seconds())
    assert_error(client.post(RENEW, headers=fresh), 401, "invalid_reader")
    assert_error(client.get(DATA, headers=fresh), 401, "reader_expired")


def test_retention_unlinks_readers_and_keeps_every_count(
    client: FlaskClient, site: dict[str, Any], store: Any, clock: Any, catch_up: Any,
    redis_server: Any,
) -> None:
    store.config["READER_RETENTION_DAYS"] = 1
    store.config["READER_TOKEN_DAYS"] = 1
    reader = new_reader(client)
    act(client, site, reader)
    catch_up()
    before = snapshot(client, site, store)
    with client.application.app_context():
        from engage.identity import get_identity
        _, reader_hash, _ = get_identity().read_token(reader["X-Engage-Reader"])
    assert readers.forget_inactive(store) == 0  # not yet a day old
    clock.advance(timedelta(days=2).total_seconds())
    assert readers.forget_inactive(store) == 1
    catch_up()
    assert snapshot(client, site, store) == before
    raw = redis_server.client(decode_responses=False)
    assert reader_hash.encode() not in b"\n".join(everything_in(raw))


def test_retention_cannot_be_shorter_than_a_token() -> None:
    with pytest.raises(ConfigError, match="READER_TOKEN_DAYS"):
        load_config({"ENGAGE_READER_TOKEN_DAYS": "30", "ENGAGE_READER_RETENTION_DAYS": "7",
                     "ENGAGE_SECRET_KEY": "x" * 32})


def test_the_worker_enforces_the_retention(
    client: FlaskClient, site: dict[str, Any], store: Any, clock: Any,
) -> None:
    from engage.worker import start_aggregates

    store.config["READER_RETENTION_DAYS"] = store.config["READER_TOKEN_DAYS"] = 1
    reader = new_reader(client)
    act(client, site, reader)
    start = clock()
    clock.advance(timedelta(days=2).total_seconds())
    thread, stop = start_aggregates(store)
    try:
        deadline = time.monotonic() + 10
        while store.redis.zcard(store.keys.readers) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert store.redis.zcard(store.keys.readers) == 0
    assert client.get("/api/v1/articles/a-one/reactions").json["counts"]["yes"] == 1
    clock.set(start)  # refused as unlinked, not only as old
    assert_error(client.get(DATA, headers=reader), 401, "invalid_reader")


def test_a_revoked_token_votes_nowhere_and_leaves_nothing(
    client: FlaskClient, site: dict[str, Any], store: Any, reader: dict[str, str],
) -> None:
    """The vote paths check revocation in the index's own round trip: an erased token's
    vote is refused before its script, and its index entry is taken back."""
    assert client.delete(DATA, headers=reader).json == {"erased": 0}
    before = sorted(store.redis.scan_iter())
    poll = site["polls"][0]
    for response in (
        client.put("/api/v1/articles/a-one/reactions/mine", json={"choice": "yes"},
                   headers=reader),
        put_vote(client, poll["id"], reader, [poll["options"][0]["id"]]),
    ):
        error = assert_error(response, 401, "invalid_reader")
        assert "erased" in error["message"]
    assert sorted(store.redis.scan_iter()) == before


def test_form_votes_are_the_readers_own_and_erased_alike(
    client: FlaskClient, site: dict[str, Any], store: Any, clock: Any,
) -> None:
    """The form without JavaScript keeps the reader's token in a cookie: the same token,
    read, renewed and refused as the widget's, and the same index, export and erasure."""
    def form(choice: str) -> dict[str, str]:
        assert client.post("/vote/a-one", data={"choice": choice},
                           headers=BROWSER).status_code == 303
        cookie = client.get_cookie("engage_reader", path="/vote/")
        assert cookie is not None
        return {"X-Engage-Reader": cookie.value}

    def counts() -> dict[str, int]:
        return dict(client.get("/api/v1/articles/a-one/reactions").json["counts"])

    start = clock()
    first = form("yes")
    data = client.get(DATA, headers=first).json
    assert [(r["article"], r["choice"]) for r in data["reactions"]] == [("a-one", "yes")]
    assert data["reactions"][0]["history"][0]["channel"] == "nojs"
    # Past READER_TOKEN_DAYS the form renews the cookie for the same reader: moved, not
    # counted twice, and the old token is refused.
    clock.advance(timedelta(days=31).total_seconds())
    renewed = form("no")
    clock.set(start)
    assert renewed != first and counts() == {"yes": 0, "no": 1}
    assert_error(client.get(DATA, headers=first), 401, "invalid_reader")
    assert client.delete(DATA, headers=renewed).json == {"erased": 1}
    assert counts() == {"yes": 0, "no": 0}
    # An erased reader's cookie votes as a new reader.
    fresh = form("yes")
    assert fresh != renewed and counts() == {"yes": 1, "no": 0}
    assert [r["choice"] for r in client.get(DATA, headers=fresh).json["reactions"]] == ["yes"]


def test_newsletter_votes_are_indexed_for_the_retention(
    client: FlaskClient, site: dict[str, Any], store: Any, editor: dict[str, str],
    clock: Any, catch_up: Any,
) -> None:
    yes = vote_links(client, editor, "a-two")["links"][0]["url"]
    assert client.post(path_for(yes, "sub-1"), headers=BROWSER).status_code == 303
    catch_up()
    assert store.redis.zcard(store.keys.readers) == 1
    clock.advance(timedelta(days=366).total_seconds())
    assert readers.forget_inactive(store) == 1
    assert store.redis.hvals(store.keys.article_voters("a-two")) == []
    assert client.get("/api/v1/articles/a-two/reactions").json["counts"]["yes"] == 1


def test_a_vote_slipping_past_an_erasure_is_withdrawn_by_the_aggregator(
    client: FlaskClient, site: dict[str, Any], store: Any, redis_server: Any,
    catch_up: Any, tmp_path: Any,
) -> None:
    """A vote checks its token against its process's copy of the revocations, read at
    most once a second. In another process, within that second, an erased token's vote
    counts: the aggregator's next pass (the worker's, within a second) finds its reader
    erased, withdraws it as the erasure did and leaves no trace of the reader."""
    from tests.conftest import get_store_of, make_app

    other_app = make_app(redis_server.url, tmp_path / "other")
    other, other_store = other_app.test_client(), get_store_of(other_app)
    try:
        reader = new_reader(client)
        with client.application.app_context():
            from engage.identity import get_identity
            reader_id, reader_hash, _ = get_identity().read_token(reader["X-Engage-Reader"])
        # The other process reads the revocations for its first vote, then not again.
        assert other.put("/api/v1/articles/a-one/reactions/mine", json={"choice": "yes"},
                         headers=reader).status_code == 200
        other_store.timer = lambda: 0.0
        catch_up()

        def figures() -> dict[str, Any]:
            """Every count, tally and all-time aggregate, a zero as an absence (a vote
            cast and withdrawn leaves its field at 0)."""
            redis = store.redis
            keys = [store.keys.article_counts(a) for a in IDS]
            keys += [store.keys.poll_counts(p["id"]) for p in site["polls"]]
            keys += [k for k in redis.scan_iter(match=store.keys.agg("*"))
                     if ":w:" not in k and not k.endswith((":seen", ":cast", ":feed"))]
            out = {}
            for key in keys:
                kind = redis.type(key)
                pairs = (redis.zrange(key, 0, -1, withscores=True) if kind == "zset"
                         else redis.hgetall(key).items())
                out[key] = {f: v for f, v in pairs if v not in ("0", 0.0)}
            return {k: v for k, v in out.items() if v}

        assert client.delete(DATA, headers=reader).json == {"erased": 1}
        catch_up()
        erased = figures()
        # Refused at once by the process that erased it...
        assert_error(client.put("/api/v1/articles/a-two/reactions/mine",
                                json={"choice": "no"}, headers=reader), 401, "invalid_reader")
        # ...and counted, for now, by the one that has not read the erasure yet.
        poll = site["polls"][0]
        slipped = other.put("/api/v1/articles/a-two/reactions/mine", json={"choice": "no"},
                            headers=reader)
        assert slipped.status_code == 200 and slipped.json["counts"]["no"] == 1
        assert put_vote(other, poll["id"], reader,
                        [poll["options"][0]["id"]]).status_code == 200
        assert figures() != erased
        assert catch_up() > 0  # the aggregator's pass, as `engage worker` runs each second
        assert figures() == erased
        aggregates.rebuild(store)
        assert figures() == erased
        trace = b"\n".join(everything_in(redis_server.client(decode_responses=False)))
        for needle in (reader["X-Engage-Reader"].encode(), reader_hash.encode(), reader_id):
            assert needle not in trace
        # A second on, it reads the revocations again and refuses the token too.
        other_store.timer = lambda: time.monotonic() + 1.0
        assert_error(other.put("/api/v1/articles/a-two/reactions/mine",
                               json={"choice": "yes"}, headers=reader), 401, "invalid_reader")
    finally:
        other_store.close()


def test_the_index_is_kept_by_the_aggregator_off_the_vote(
    client: FlaskClient, site: dict[str, Any], store: Any, reader: dict[str, str],
    catch_up: Any,
) -> None:
    """A vote or a click writes nothing of the reader's outside the article's or poll's
    keys; the aggregator's pass files it under the reader (the index and the last
    action), and lets go of a click's credit once filed."""
    act(client, site, reader)
    with client.application.app_context():
        from engage.identity import get_identity
        reader_hash = get_identity().read_token(reader["X-Engage-Reader"])[1]
    index = store.keys.reader_index(reader_hash)
    credits = store.keys.article_credits("a-two")
    assert not store.redis.exists(index) and store.redis.zcard(store.keys.readers) == 0
    assert sorted(store.redis.hvals(credits)) == [reader_hash] * len(site["links"])
    catch_up()
    filed = store.redis.hgetall(index)
    assert sorted(filed) == sorted([*(f"a:{a}" for a in IDS),
                                    *(f"p:{p['id']}" for p in site["polls"]),
                                    *(f"c:{link}" for link in site["links"])])
    assert store.redis.zscore(store.keys.readers, reader_hash) == max(
        int(ms) for ms in filed.values())
    assert not store.redis.exists(credits)


def test_revocations_are_kept_as_long_as_a_token_can_vote(
    client: FlaskClient, site: dict[str, Any], store: Any, clock: Any, reader: dict[str, str],
) -> None:
    """The stream every process reads revocations from is trimmed by the retention job
    to READER_TOKEN_DAYS: an older token is refused for its age anyway."""
    vote = "/api/v1/articles/a-one/reactions/mine"
    assert client.put(vote, json={"choice": "yes"}, headers=reader).status_code == 200
    assert client.delete(DATA, headers=reader).json == {"erased": 1}
    assert store.redis.xlen(store.keys.revocations) == 1
    assert readers.forget_inactive(store) == 0
    assert store.redis.xlen(store.keys.revocations) == 1
    clock.advance(timedelta(days=31).total_seconds())
    readers.forget_inactive(store)
    assert store.redis.xlen(store.keys.revocations) == 0
    assert_error(client.put(vote, json={"choice": "yes"}, headers=reader), 401,
                 "reader_expired")
    assert_error(client.post(RENEW, headers=reader), 401, "invalid_reader")


def test_a_renewed_away_token_within_the_second_votes_as_its_own_reader(
    client: FlaskClient, site: dict[str, Any], store: Any, redis_server: Any, tmp_path: Any,
) -> None:
    """On a process that has not read a renewal yet, the old token's vote lands in the
    reader's one vote, the new token's: moved, never counted twice."""
    from tests.conftest import get_store_of, make_app

    other_app = make_app(redis_server.url, tmp_path / "other")
    other, other_store = other_app.test_client(), get_store_of(other_app)
    vote = "/api/v1/articles/a-one/reactions/mine"
    try:
        reader = new_reader(client)
        assert other.put(vote, json={"choice": "yes"}, headers=reader).status_code == 200
        other_store.timer = lambda: 0.0  # has read the revocations: not again for now
        renewed = client.post(RENEW, headers=reader)
        assert renewed.status_code == 201
        fresh = {"X-Engage-Reader": renewed.json["reader"]}
        assert_error(client.put(vote, json={"choice": "no"}, headers=reader), 401,
                     "invalid_reader")
        slipped = other.put(vote, json={"choice": "no"}, headers=reader)
        assert slipped.status_code == 200
        assert slipped.json["counts"] == {"yes": 0, "no": 1}
        assert client.get(vote.removesuffix("/mine"), headers=fresh).json["mine"] == "no"
        other_store.timer = lambda: time.monotonic() + 1.0
        assert_error(other.put(vote, json={"choice": "yes"}, headers=reader), 401,
                     "invalid_reader")
        assert other.put(vote, json={"choice": "yes"}, headers=fresh).json["counts"] == {
            "yes": 1, "no": 0}
    finally:
        other_store.close()
