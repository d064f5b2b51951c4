"""Round trips to Redis: one per vote (the article's one script: the reader's index is
kept by the aggregator and the token checked against the process's copy of the
revocations, read at most once a second: docs/privacy.md), one per single-article read
(none for an anonymous read the process's cache of counts holds).

A small TCP proxy between engage and a dedicated redis-server counts round trips: a
round trip starts each time the client sends after the server last spoke (or first),
so a pipeline or an EVALSHA is one however many commands it carries. INFO
commandstats on the same server shows what those trips carried.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage.identity import get_identity
from engage.store import aggregates, get_store, tokens
from tests.conftest import ARTICLE, make_app
from tests.redis_server import RedisServer

READ = "/api/v1/articles/korea-china-reset/reactions"
# A vote's trips: the article's script.
VOTE_TRIPS = 1


class CountingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.round_trips = 0
        self.lock = threading.Lock()
        self.closing = False
        self.drop_next_reply = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        server_spoke_last = True
        try:
            while True:
                for key, _ in selector.select():
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client:
                        if server_spoke_last:
                            with self.lock:
                                self.round_trips += 1
                        server_spoke_last = False
                    else:
                        server_spoke_last = True
                        if self.drop_next_reply:
                            # Redis did the work; the client never hears of it.
                            self.drop_next_reply = False
                            return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            client.close()
            upstream.close()

    def reset(self) -> None:
        with self.lock:
            self.round_trips = 0

    def close(self) -> None:
        self.closing = True
        self.listener.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Flask, CountingProxy, RedisServer]]:
    server = RedisServer(tmp_path / "redis").start()
    proxy = CountingProxy(server.port)
    app = make_app(f"redis://127.0.0.1:{proxy.port}/0", tmp_path)
    yield app, proxy, server
    with app.app_context():
        get_store().close()
    proxy.close()
    server.stop()


def reader_for(app: Flask) -> dict[str, str]:
    with app.app_context():
        return {"X-Engage-Reader": get_identity().mint_reader()}


def command_calls(server: RedisServer) -> dict[str, int]:
    client = server.client()
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def warm(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        editor = {"Authorization": "Bearer " + tokens.create(get_store(), "editor")[0]}
    assert client.put("/api/v1/articles/korea-china-reset", json=ARTICLE,
                      headers=editor).status_code == 201
    # Open pooled connections, load the script and the day's address key.
    first = reader_for(app)
    assert client.put(READ + "/mine", json={"choice": "yes"}, headers=first).status_code == 200
    assert client.get(READ, headers=first).status_code == 200


def kept_articles(app: Flask, client: FlaskClient, prefix: str, n: int
                  ) -> tuple[dict[str, str], list[str]]:
    """After `warm`, stops the caches' timer (nothing in them expires) and registers n
    articles: an editor's headers and their ids."""
    warm(app, client)
    with app.app_context():
        editor = {"Authorization": "Bearer " + tokens.create(get_store(), "editor")[0]}
        get_store().timer = lambda: 0.0
    ids = [f"{prefix}{i}" for i in range(n)]
    for article_id in ids:
        assert client.put(f"/api/v1/articles/{article_id}", headers=editor, json={
            **ARTICLE, "url": f"https://news.example.com/{article_id}"}).status_code == 201
    return editor, ids


def count(proxy: CountingProxy, call: Any) -> int:
    proxy.reset()
    response = call()
    assert response.status_code in (200, 304), response.get_json()
    return proxy.round_trips


def test_one_round_trip_per_vote_and_read(setup: tuple[Flask, CountingProxy, RedisServer]
                                          ) -> None:
    app, proxy, server = setup
    client = app.test_client()
    warm(app, client)
    readers = [reader_for(app) for _ in range(3)]

    # Votes: a new reader, a change, a repeat, a withdrawal, a reason: the article's
    # script each (VOTE_TRIPS). The revocations were read by the warm-up's vote; the
    # timer stands still, so the once-a-second read of them does not fall in here.
    with app.app_context():
        get_store().timer = lambda: 0.0
    assert count(proxy, lambda: client.put(READ + "/mine", json={"choice": "yes"},
                                           headers=readers[0])) == VOTE_TRIPS
    assert count(proxy, lambda: client.put(READ + "/mine", json={"choice": "no"},
                                           headers=readers[0])) == VOTE_TRIPS
    assert count(proxy, lambda: client.put(READ + "/mine", json={"choice": "no"},
                                           headers=readers[0])) == VOTE_TRIPS
    assert count(proxy, lambda: client.delete(READ + "/mine", headers=readers[0])) == VOTE_TRIPS
    assert count(proxy, lambda: client.put(READ + "/mine",
                                           json={"choice": "no", "reason": "outdated"},
                                           headers=readers[1])) == VOTE_TRIPS

    # Reads: anonymous, with a reader, conditional, the article, a batch. The timer of
    # the cache of anonymous counts stands still, so nothing in it expires here.
    assert count(proxy, lambda: client.get(READ)) == 1
    assert count(proxy, lambda: client.get(READ, headers=readers[2])) == 1
    etag = client.get(READ).headers["ETag"]
    # Answered from this process's cache of anonymous counts.
    assert count(proxy, lambda: client.get(READ, headers={"If-None-Match": etag})) == 0
    assert count(proxy, lambda: client.get(READ)) == 0
    assert count(proxy, lambda: client.get("/api/v1/articles/korea-china-reset")) == 1
    # A batch is one pipeline too (unknown articles are never cached, so this one goes
    # to Redis); kept small here because redis-py writes a large pipeline in chunks the
    # server starts answering early, which this proxy would see as extra turns although
    # the client never waits in between.
    ids = "&".join(f"article=a{i}" for i in range(9))
    batch = f"/api/v1/reactions?{ids}&article=korea-china-reset"
    assert count(proxy, lambda: client.get(batch)) == 1


def test_batch_of_kept_articles_makes_no_round_trip(
        setup: tuple[Flask, CountingProxy, RedisServer]) -> None:
    """A batch of articles this process read within the cache's age costs no round trip;
    a vote here drops only its article, fetched again in one pipeline with the unknown."""
    app, proxy, _server = setup
    client = app.test_client()
    _editor, ids = kept_articles(app, client, "k", 5)
    batch = "/api/v1/reactions?" + "&".join(f"article={aid}" for aid in ids)
    assert count(proxy, lambda: client.get(batch)) == 1
    assert count(proxy, lambda: client.get(batch)) == 0
    etag = client.get(batch).headers["ETag"]
    assert count(proxy, lambda: client.get(batch, headers={"If-None-Match": etag})) == 0

    vote = client.put("/api/v1/articles/k3/reactions/mine", json={"choice": "no"},
                      headers=reader_for(app))
    assert vote.status_code == 200
    assert count(proxy, lambda: client.get(batch + "&article=missing")) == 1
    answer = client.get(batch + "&article=missing").json
    assert answer["articles"]["k3"] == {"counts": vote.json["counts"], "total": 1}
    assert answer["unknown"] == ["missing"]
    assert count(proxy, lambda: client.get(batch)) == 0


def test_vote_is_one_evalsha(setup: tuple[Flask, CountingProxy, RedisServer]) -> None:
    app, proxy, server = setup
    client = app.test_client()
    warm(app, client)
    reader = reader_for(app)
    before = command_calls(server)
    assert client.put(READ + "/mine", json={"choice": "no"}, headers=reader).status_code == 200
    after = command_calls(server)
    assert after["evalsha"] - before["evalsha"] == 1
    # commandstats also counts the commands the script runs inside Redis (HGET, EXISTS,
    # ...); these are ones the script never runs, so any change came over the network.
    for name in ("eval", "script", "script|load", "set", "ping", "select"):
        assert after.get(name, 0) == before.get(name, 0), name


def test_address_key_cached_per_day(setup: tuple[Flask, CountingProxy, RedisServer]) -> None:
    app, proxy, server = setup
    client = app.test_client()
    warm(app, client)
    with app.app_context():
        get_store().timer = lambda: 0.0  # no read of the revocations falls in here
    before = command_calls(server)
    proxy.reset()
    for index in range(5):
        response = client.put(READ + "/mine", json={"choice": "yes"},
                              headers=reader_for(app),
                              environ_base={"REMOTE_ADDR": f"192.0.2.{index + 10}"})
        assert response.status_code == 200
    after = command_calls(server)
    # Five addresses, one day: the day's key was fetched once, during warm-up, and
    # each vote was its one script call.
    assert proxy.round_trips == 5 * VOTE_TRIPS
    assert after.get("set", 0) == before.get("set", 0)
    assert after["evalsha"] - before["evalsha"] == 5


def test_retry_after_a_lost_reply_does_not_double_count(
    setup: tuple[Flask, CountingProxy, RedisServer]
) -> None:
    """The connection drops after Redis ran the vote: redis-py retries, nothing counts twice."""
    app, proxy, server = setup
    client = app.test_client()
    warm(app, client)  # one "yes" from the warm-up reader
    reader = reader_for(app)
    events = server.client().xlen("engage:a:{korea-china-reset}:events")

    proxy.drop_next_reply = True
    response = client.put(READ + "/mine", json={"choice": "yes"}, headers=reader)
    assert response.status_code == 200
    assert proxy.drop_next_reply is False, "the reply was dropped"
    assert response.get_json()["counts"] == {"yes": 2, "no": 0}

    proxy.drop_next_reply = True
    response = client.put(READ + "/mine", json={"choice": "no", "reason": "unclear"},
                          headers=reader)
    assert response.status_code == 200
    assert response.get_json()["counts"] == {"yes": 1, "no": 1}

    redis_client = server.client()
    assert redis_client.hgetall("engage:a:{korea-china-reset}:counts") == {"yes": "1", "no": "1"}
    assert redis_client.hgetall("engage:a:{korea-china-reset}:reasons") == {"unclear": "1"}
    assert redis_client.xlen("engage:a:{korea-china-reset}:events") == events + 2
    redis_client.close()


def test_widget_mine_round_trips_do_not_grow_with_articles(
    setup: tuple[Flask, CountingProxy, RedisServer]
) -> None:
    """The widget's private read fetches every article's vote in one pipeline."""
    app, proxy, _server = setup
    client = app.test_client()
    warm(app, client)
    reader = reader_for(app)

    def mine(n: int) -> Any:
        ids = "&".join(f"article=a{i}" for i in range(n))
        return lambda: client.get(f"/api/v1/widget/mine?article=korea-china-reset&{ids}",
                                  headers=reader)

    assert count(proxy, mine(1)) == count(proxy, mine(8))


def test_widget_bundle_round_trips(setup: tuple[Flask, CountingProxy, RedisServer]) -> None:
    """An anonymous page view the process read within the cache's age costs no round
    trip; one it did not costs three pipelines however many articles it names (their
    own keys; their polls and the related candidates; the candidates' titles and
    counts), and a vote here makes the next one fetch again."""
    app, proxy, _server = setup
    client = app.test_client()
    editor, ids = kept_articles(app, client, "w", 6)
    poll = client.post("/api/v1/polls", headers=editor, json={
        "question": "Will the talks last?", "options": ["Yes", "No"],
        "article": "korea-china-reset"})
    assert poll.status_code == 201, poll.json

    def bundle(*article_ids: str) -> Any:
        query = "&".join(f"article={aid}" for aid in article_ids)
        return lambda: client.get(f"/api/v1/widget?{query}")

    assert count(proxy, bundle("korea-china-reset")) == 3
    assert count(proxy, bundle("korea-china-reset")) == 0
    etag = client.get("/api/v1/widget?article=korea-china-reset").headers["ETag"]
    assert count(proxy, lambda: client.get("/api/v1/widget?article=korea-china-reset",
                                           headers={"If-None-Match": etag})) == 0
    assert count(proxy, bundle(*ids, "missing")) == 3
    assert count(proxy, bundle(*ids)) == 0
    body = client.get("/api/v1/widget?article=korea-china-reset").json
    assert body["articles"]["korea-china-reset"]["polls"][0]["id"] == poll.json["id"]
    assert len(body["articles"]["korea-china-reset"]["links"]) == 4  # filled: related

    vote = client.put(READ + "/mine", json={"choice": "no"}, headers=reader_for(app))
    assert vote.status_code == 200
    assert count(proxy, bundle("korea-china-reset")) == 3
    counts = client.get("/api/v1/widget?article=korea-china-reset").json
    assert counts["articles"]["korea-china-reset"]["counts"] == vote.json["counts"]


def test_one_round_trip_per_poll_answer_and_form_vote(
        setup: tuple[Flask, CountingProxy, RedisServer]) -> None:
    """A poll answer is its poll's one script, as a reaction is; the form without
    JavaScript, whose reader's cookie is checked the same way, adds no trip for the
    reader either."""
    from tests.test_ballot import BROWSER

    app, proxy, _server = setup
    client = app.test_client()
    editor, _ids = kept_articles(app, client, "p", 1)
    poll = client.post("/api/v1/polls", headers=editor, json={
        "question": "Will the talks last?", "options": ["Yes", "No"]}).json
    votes = f"/api/v1/polls/{poll['id']}/votes/mine"
    # Loads the poll's script.
    assert client.put(votes, json={"options": [poll["options"][0]["id"]]},
                      headers=reader_for(app)).status_code == 200
    reader = reader_for(app)
    for option in poll["options"]:
        assert count(proxy, lambda o=option: client.put(
            votes, json={"options": [o["id"]]}, headers=reader)) == VOTE_TRIPS
    assert count(proxy, lambda: client.delete(votes, headers=reader)) == VOTE_TRIPS

    def form(choice: str) -> int:
        proxy.reset()
        response = client.post("/vote/korea-china-reset", data={"choice": choice},
                               headers=BROWSER)
        assert response.status_code == 303, response.data
        return proxy.round_trips

    form("yes")  # mints the cookie's reader
    assert client.get_cookie("engage_reader", path="/vote/") is not None
    # The article is read twice (the form's return address, then its choices: the
    # form's own, as before), then the script; the cookie's token costs no trip.
    assert form("no") == form("yes") == 2 + VOTE_TRIPS


def test_a_credited_click_costs_what_an_anonymous_one_does(
        setup: tuple[Flask, CountingProxy, RedisServer]) -> None:
    """A click that carries its reader's token is credited without a trip of its own:
    the reader waits in the article's keys for the aggregator to file it."""
    from tests.test_ballot import BROWSER
    from tests.test_clicks import LINKS

    app, proxy, _server = setup
    client = app.test_client()
    editor, _ids = kept_articles(app, client, "c", 1)
    links = client.put("/api/v1/articles/korea-china-reset/links", json=LINKS,
                       headers=editor).json["links"]
    reader = reader_for(app)["X-Engage-Reader"]

    def click(link: dict[str, Any], address: str, body: dict[str, str]) -> int:
        proxy.reset()
        response = client.post(f"/r/{link['id']}", data=body, headers=BROWSER,
                               environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 303
        return proxy.round_trips

    click(links[0], "198.51.100.1", {"reader": reader})  # loads the script
    anonymous = click(links[1], "203.0.113.2", {})
    assert click(links[1], "192.0.2.3", {"reader": reader}) == anonymous
    with app.app_context():
        store = get_store()
        credited = store.redis.hvals(store.keys.article_credits("korea-china-reset"))
    assert len(credited) == 2  # the first click's and the last's, not the anonymous one


def test_an_aggregator_pass_files_its_readers_in_one_zadd(
        setup: tuple[Flask, CountingProxy, RedisServer]) -> None:
    """The aggregator keeps the readers' last-seen index (store/readers.py) from the
    votes it applies: one ZADD for all the readers of a pass, not one per reader."""
    app, _proxy, server = setup
    client = app.test_client()
    warm(app, client)
    for _ in range(5):
        assert client.put(READ + "/mine", json={"choice": "yes"},
                          headers=reader_for(app)).status_code == 200
    watcher, done = server.client(), "aggregator-pass-done"
    with app.app_context():
        store = get_store()
        try:
            with watcher.monitor() as monitor:
                assert aggregates.Aggregator(store).step() >= 6
                other = server.client()
                other.echo(done)
                other.close()
                sent: list[str] = []
                while (command := monitor.next_command())["command"] != f"ECHO {done}":
                    if command["client_type"] != "lua":
                        sent.append(command["command"])
        finally:
            watcher.close()
        assert len([c for c in sent if c.startswith(f"ZADD {store.keys.readers} ")]) == 1
        # The warm-up's reader and the five.
        assert store.redis.zcard(store.keys.readers) == 6
