"""Webhooks: the admin API, signed deliveries, retries, dead letters, restart safety."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import generate_latest

from engage import metrics
from engage.identity import get_identity
from engage.store import get_store, tokens, webhooks
from engage.worker import Worker
from tests.conftest import ARTICLE, make_app, suite_dns
from tests.redis_server import RedisServer
from tests.webhook_receiver import Receiver, fail_fraction, signature_ok

pytestmark = pytest.mark.usefixtures("loopback_only")

SECRET = "a-webhook-secret-of-some-length"
HOOK = "https://hooks.engage.test/engage"  # public, as tests/dns_server.py answers for it


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {
        "WEBHOOK_RETRY_BASE": 0.02,
        "WEBHOOK_RETRY_MAX": 0.2,
        "WEBHOOK_TIMEOUT": 2.0,
        "WEBHOOK_MAX_ATTEMPTS": 4,
        "THROTTLE_VOTES": 100_000,
        "WEBHOOK_ALLOW_PRIVATE": True,  # the test receiver listens on 127.0.0.1
    }


def register(client: FlaskClient, admin: dict[str, str], url: str,
             events: list[str] | None = None) -> dict[str, Any]:
    body = {"url": url, "events": events or ["*"], "secret": SECRET}
    response = client.post("/api/v1/webhooks", json=body, headers=admin)
    assert response.status_code == 201, response.json
    return dict(response.json)


def put_article(client: FlaskClient, editor: dict[str, str], article_id: str) -> None:
    response = client.put(f"/api/v1/articles/{article_id}", json=ARTICLE, headers=editor)
    assert response.status_code in (200, 201), response.json


def vote(client: FlaskClient, article_id: str, reader: str, choice: str = "yes") -> None:
    response = client.put(
        f"/api/v1/articles/{article_id}/reactions/mine",
        json={"choice": choice}, headers={"X-Engage-Reader": reader},
    )
    assert response.status_code == 200, response.json


def mint(app: Flask) -> str:
    with app.app_context():
        return get_identity().mint_reader()


def run_until(worker: Worker, done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "worker did not finish in time"
        if not worker.step():
            time.sleep(0.01)


# -- API -------------------------------------------------------------------------------
def test_admin_registers_lists_and_deletes(client: FlaskClient, admin: dict[str, str],
                                           store: Any) -> None:
    created = register(client, admin, HOOK, ["reaction.*"])
    assert set(created) == {"id", "url", "events", "site", "created_at", "last_attempt"}
    assert created["site"] is None  # every site's events
    assert created["last_attempt"] is None
    assert created["events"] == ["reaction.*"]
    listed = client.get("/api/v1/webhooks", headers=admin)
    assert listed.status_code == 200
    assert listed.json["webhooks"] == [created]
    assert SECRET not in listed.get_data(as_text=True)
    assert webhooks.list_all(store)[0]["secret"] == SECRET  # kept to sign, never shown
    deleted = client.delete(f"/api/v1/webhooks/{created['id']}", headers=admin)
    assert deleted.status_code == 204
    assert client.get("/api/v1/webhooks", headers=admin).json["webhooks"] == []
    again = client.delete(f"/api/v1/webhooks/{created['id']}", headers=admin)
    assert again.status_code == 404
    assert again.json["error"]["code"] == "not_found"


def test_only_admins(client: FlaskClient, editor: dict[str, str]) -> None:
    body = {"url": HOOK, "events": ["*"], "secret": SECRET}
    assert client.post("/api/v1/webhooks", json=body).status_code == 401
    assert client.post("/api/v1/webhooks", json=body, headers=editor).status_code == 403
    assert client.get("/api/v1/webhooks", headers=editor).status_code == 403


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://hooks.engage.test/", "events": ["*"], "secret": SECRET}, "url"),
    ({"url": HOOK, "events": ["reaction.nope"], "secret": SECRET}, "events"),
    ({"url": HOOK, "events": [], "secret": SECRET}, "events"),
    ({"url": HOOK, "events": ["*"], "secret": "short"}, "secret"),
    ({"url": HOOK, "events": ["*"]}, "secret"),
    ({"url": HOOK, "events": ["*"], "secret": SECRET, "x": 1}, "x"),
])
def test_bad_registrations_are_422(client: FlaskClient, admin: dict[str, str], store: Any,
                                   body: dict[str, Any], field: str) -> None:
    response = client.post("/api/v1/webhooks", json=body, headers=admin)
    assert response.status_code == 422
    assert field in response.json["error"]["fields"]
    assert webhooks.list_all(store) == []


def test_matching() -> None:
    assert webhooks.matches(["*"], "poll.vote")
    assert webhooks.matches(["reaction.*"], "reaction.change")
    assert not webhooks.matches(["reaction.*"], "article.created")
    assert webhooks.matches(["poll.closed"], "poll.closed")
    assert not webhooks.matches(["poll.closed"], "poll.opened")


# -- delivery --------------------------------------------------------------------------
def test_delivers_signed_matching_events(app: Flask, client: FlaskClient, admin: dict[str, str],
                                         editor: dict[str, str], store: Any) -> None:
    put_article(client, editor, "before-hook")
    vote(client, "before-hook", mint(app))  # before the webhook existed: not delivered
    time.sleep(0.002)
    with Receiver() as receiver:
        hook = register(client, admin, receiver.url, ["reaction.*"])
        put_article(client, editor, "after-hook")  # article.created: not subscribed
        reader = mint(app)
        vote(client, "after-hook", reader, "yes")
        vote(client, "after-hook", reader, "no")
        worker = Worker(store, "test")
        run_until(worker, lambda: len(receiver.delivered) >= 2)
        worker.step()
        assert len(receiver.requests) == 2
        bodies = sorted(receiver.delivered_bodies(), key=lambda b: b["id"])
        assert [b["type"] for b in bodies] == ["reaction.vote", "reaction.change"]
        first = bodies[0]
        assert set(first) == {"id", "type", "occurred_at", "data"}
        assert first["id"].startswith(hook["id"] + ":a:after-hook:")
        assert first["data"]["article"] == "after-hook"
        assert first["data"]["choice"] == "yes"
        assert first["occurred_at"].endswith("+00:00")
        for record in receiver.delivered:
            assert signature_ok(SECRET, record)
            headers = record["headers"]
            assert headers["X-Engage-Delivery"] == json.loads(record["body"])["id"]
            assert headers["Content-Type"] == "application/json"
            assert abs(int(headers["X-Engage-Timestamp"]) - time.time()) < 60
        assert not signature_ok("another-secret-entirely", receiver.delivered[0])


def test_a_webhook_bound_to_a_site_gets_its_events_only(
        app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str],
        store: Any) -> None:
    magazine = {"name": "magazine", "origins": ["https://magazine.example.com"],
                "reactions": {"choices": ["😀", "😮", "😢", "😡", "👍"], "reason_choice": None,
                              "reasons": []}}
    assert client.post("/api/v1/sites", json=magazine, headers=admin).status_code == 201
    bad = client.post("/api/v1/webhooks", headers=admin, json={
        "url": HOOK, "events": ["*"], "secret": SECRET, "site": "nowhere"})
    assert bad.status_code == 422 and "site" in bad.json["error"]["fields"]
    assert client.post("/api/v1/webhooks", headers=editor, json={
        "url": HOOK, "events": ["*"], "secret": SECRET, "site": "magazine"}).status_code == 403
    with Receiver() as bound, Receiver() as everything:
        body = {"url": bound.url, "events": ["*"], "secret": SECRET, "site": "magazine"}
        hook = client.post("/api/v1/webhooks", json=body, headers=admin)
        assert hook.status_code == 201 and hook.json["site"] == "magazine"
        register(client, admin, everything.url, ["*"])
        put_article(client, editor, "home")
        article = {**ARTICLE, "site": "magazine"}
        assert client.put("/api/v1/articles/feature", json=article,
                          headers=editor).status_code == 201
        poll = {"question": "Read it?", "options": ["Yes", "No"], "article": "feature"}
        assert client.post("/api/v1/polls", json=poll, headers=admin).status_code == 201
        loose = {"question": "No article?", "options": ["Yes", "No"]}  # the default site's
        assert client.post("/api/v1/polls", json=loose, headers=admin).status_code == 201
        vote(client, "home", mint(app), "yes")
        vote(client, "feature", mint(app), "😀")
        worker = Worker(store, "test")
        run_until(worker, lambda: len(everything.delivered) >= 6
                  and len(bound.delivered) >= 3)
        worker.step()
        got = sorted((b["type"], b["data"]["article"]) for b in bound.delivered_bodies())
        assert got == [("article.created", "feature"), ("poll.created", "feature"),
                       ("reaction.vote", "feature")]
        assert len(everything.delivered) == 6
        assert {b["data"]["article"] for b in everything.delivered_bodies()} == {
            "home", "feature", ""}


def test_worker_does_not_recreate_an_expired_stream(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
) -> None:
    """A deleted poll stays indexed while its log expires; the worker must not bring the
    log back as an empty stream without a lifetime, and must still deliver the rest."""
    with Receiver() as receiver:
        register(client, admin, receiver.url, ["reaction.*"])
        put_article(client, editor, "still-here")
        gone = store.keys.poll_part("gone-poll", "events")
        store.redis.zadd(store.keys.polls, {"gone-poll": 1})  # indexed, log expired
        vote(client, "still-here", mint(app))
        worker = Worker(store, "test")
        run_until(worker, lambda: len(receiver.delivered) >= 1)
        assert store.redis.exists(gone) == 0
        assert len(receiver.delivered) == 1


def test_failed_delivery_is_retried_with_the_same_id_and_body(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
) -> None:
    with Receiver(fail=lambda n: n < 2) as receiver:
        register(client, admin, receiver.url, ["reaction.vote"])
        put_article(client, editor, "retried")
        vote(client, "retried", mint(app))
        worker = Worker(store, "test")
        run_until(worker, lambda: len(receiver.delivered) == 1)
        assert [r["failed"] for r in receiver.requests] == [True, True, False]
        assert len({r["body"] for r in receiver.requests}) == 1
        assert [r["headers"]["X-Engage-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
        assert webhooks.retry_count(store) == 0


def test_deliveries_run_in_parallel(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
) -> None:
    """Eight events to a slow endpoint take about one response time, not eight."""
    with Receiver(delay=0.5) as slow, Receiver() as fast:
        register(client, admin, slow.url, ["reaction.*"])
        register(client, admin, fast.url, ["reaction.*"])
        put_article(client, editor, "parallel")
        for _ in range(8):
            vote(client, "parallel", mint(app))
        worker = Worker(store, "test")
        started = time.monotonic()
        run_until(worker, lambda: len(slow.delivered) == 8 and len(fast.delivered) == 8)
        assert time.monotonic() - started < 2.5  # one after another would take 4 s


def test_backoff_doubles_up_to_the_cap(store: Any) -> None:
    worker = Worker(store, "test")
    worker.retry_base, worker.retry_max = 10.0, 60.0
    assert [worker.backoff(n) for n in range(1, 6)] == [10.0, 20.0, 40.0, 60.0, 60.0]


def test_dead_letter_after_the_last_attempt(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
) -> None:
    dead_letters = "engage_webhook_dead_letters_total"
    dead_before = metrics.worker_registry().get_sample_value(dead_letters) or 0.0
    with Receiver(fail=lambda n: True) as receiver:
        hook = register(client, admin, receiver.url, ["reaction.*"])
        put_article(client, editor, "doomed")
        vote(client, "doomed", mint(app))
        worker = Worker(store, "test")
        run_until(worker, lambda: bool(webhooks.dead_letters(store)))
        assert len(receiver.requests) == app.config["WEBHOOK_MAX_ATTEMPTS"]
        dead = webhooks.dead_letters(store)
        assert len(dead) == 1
        assert dead[0]["webhook"] == hook["id"]
        assert dead[0]["error"] == "http 500"
        assert json.loads(dead[0]["body"])["type"] == "reaction.vote"
        assert webhooks.retry_count(store) == 0
        scrape = generate_latest(metrics.worker_registry()).decode()
        assert f"engage_webhook_dead_letters_total {dead_before + 1}" in scrape


def test_deleted_webhook_drops_its_retries(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
) -> None:
    with Receiver(fail=lambda n: True) as receiver:
        hook = register(client, admin, receiver.url, ["*"])
        put_article(client, editor, "dropped")
        worker = Worker(store, "test")
        run_until(worker, lambda: webhooks.retry_count(store) == 1)
        client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin)
        run_until(worker, lambda: webhooks.retry_count(store) == 0)
        assert webhooks.dead_letters(store) == []


def test_unacknowledged_entries_are_delivered_after_a_restart(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
) -> None:
    """A worker that read entries and died before acknowledging them loses nothing."""
    with Receiver() as receiver:
        register(client, admin, receiver.url, ["reaction.*"])
        put_article(client, editor, "crash")
        vote(client, "crash", mint(app))
        crashed = Worker(store, "w1")
        crashed._refresh_streams(webhooks.list_all(store))
        read = webhooks.read(store, "w1", crashed.streams, 10)  # read, then "die"
        assert [fields["type"] for _s, _i, fields in read] == ["article.created", "reaction.vote"]
        assert receiver.requests == []
        restarted = Worker(store, "w1")
        run_until(restarted, lambda: len(receiver.delivered) == 1)
        # Another consumer takes over entries a dead one left idle.
        vote(client, "crash", mint(app))
        webhooks.read(store, "w1", crashed.streams, 10)
        other = Worker(store, "w2")
        other.claim_idle_ms = 0
        run_until(other, lambda: len(receiver.delivered) == 2)


# -- restart safety under load ----------------------------------------------------------------
def start_worker(redis_url: str, tmp_path: Path, **settings: str) -> subprocess.Popen[bytes]:
    """`engage worker` as consumer w1, with these ENGAGE_* settings over the ones here."""
    env = {
        **os.environ,
        "ENGAGE_REDIS_URL": redis_url,
        "ENGAGE_SECRET_KEY": "worker-test-secret-key-123456",
        "ENGAGE_DATA_DIR": str(tmp_path),
        "ENGAGE_WEBHOOK_RETRY_BASE": "0.05",
        "ENGAGE_WEBHOOK_RETRY_MAX": "0.5",
        "ENGAGE_WEBHOOK_MAX_ATTEMPTS": "40",
        "ENGAGE_WEBHOOK_TIMEOUT": "1",
        "ENGAGE_WEBHOOK_CLAIM_IDLE": "2",
        "ENGAGE_WORKER_POLL": "0.05",
        "ENGAGE_LOG_JSON": "0",
        "ENGAGE_WEBHOOK_ALLOW_PRIVATE": "1",
        "ENGAGE_WEBHOOK_DNS": "{}:{}".format(*suite_dns().address),
        **{f"ENGAGE_{name}": value for name, value in settings.items()},
    }
    return subprocess.Popen(
        [sys.executable, "-m", "engage.cli", "worker", "--consumer", "w1", "--metrics-port", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "ab"),  # noqa: SIM115
    )


@pytest.mark.slow
def test_every_event_arrives_once_per_id_through_kills_and_failures(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
    redis_server: RedisServer, tmp_path: Path,
) -> None:
    articles = [f"load-{i}" for i in range(20)]
    with Receiver(fail=fail_fraction(0.10)) as receiver:
        hook = register(client, admin, receiver.url, ["reaction.*"])
        for article_id in articles:
            put_article(client, editor, article_id)
        readers = [mint(app) for _ in range(50)]
        votes = [(a, r) for r in readers for a in articles]  # 1,000 votes
        worker = start_worker(redis_server.url, tmp_path)
        in_flight: list[int] = []  # index of the request the worker was waiting on
        try:
            for index, (article_id, reader) in enumerate(votes):
                vote(client, article_id, reader, "yes" if index % 3 else "no")
                if index in (300, 650):
                    # Slow the receiver, and kill the worker while it waits for an answer.
                    receiver.delay = 0.5
                    seen = len(receiver.requests)
                    deadline = time.monotonic() + 20
                    while len(receiver.requests) == seen:
                        assert time.monotonic() < deadline, "the worker sent nothing"
                        time.sleep(0.002)
                    os.kill(worker.pid, signal.SIGKILL)
                    in_flight.append(len(receiver.requests) - 1)
                    worker.wait(10)
                    receiver.delay = 0.0
                    worker = start_worker(redis_server.url, tmp_path)
            expected = set()
            for article_id in articles:
                for entry_id, fields in store.redis.xrange(store.keys.article_events(article_id)):
                    if fields["type"].startswith("reaction."):
                        expected.add(f"{hook['id']}:a:{article_id}:{entry_id}")
            assert len(expected) == 1000
            deadline = time.monotonic() + 40
            while {b["id"] for b in receiver.delivered_bodies()} != expected:
                assert time.monotonic() < deadline, (
                    f"{len(expected - {b['id'] for b in receiver.delivered_bodies()})} missing"
                )
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                time.sleep(0.1)
        finally:
            worker.terminate()
            worker.wait(10)
        assert len(in_flight) == 2
        assert receiver.truncated <= 2  # a kill may cut one request short
        ids = [json.loads(r["body"])["id"] for r in receiver.requests]
        for index in in_flight:
            # What the killed worker was sending, the next one sent again: same id.
            assert ids[index] in ids[index + 1:]
        bodies_by_id: dict[str, set[bytes]] = {}
        for record in receiver.requests:
            assert signature_ok(SECRET, record)
            delivery_id = json.loads(record["body"])["id"]
            assert record["headers"]["X-Engage-Delivery"] == delivery_id
            bodies_by_id.setdefault(delivery_id, set()).add(record["body"])
        assert set(bodies_by_id) == expected
        assert all(len(bodies) == 1 for bodies in bodies_by_id.values())  # same id, same body
        failed = sum(1 for r in receiver.requests if r["failed"])
        assert failed > 50  # the receiver really refused about 10%
        assert webhooks.dead_letters(store) == []


def test_worker_outlives_a_redis_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker loop waits out a Redis outage instead of dying, then carries on."""
    caplog.set_level(logging.WARNING, logger="engage.worker")
    server = RedisServer(tmp_path / "redis").start()
    app = make_app(server.url, tmp_path, WORKER_POLL=0.05, REDIS_RETRIES=0,
                   WEBHOOK_ALLOW_PRIVATE=True)
    client = app.test_client()
    with app.app_context():
        store = get_store()
    stop = threading.Event()
    worker = Worker(store, "outage")
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    with Receiver() as receiver:
        try:
            thread.start()
            server.kill()
            deadline = time.monotonic() + 10
            while not any("redis unavailable" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the loop never met the outage"
                time.sleep(0.05)
            assert thread.is_alive()
            server = RedisServer(tmp_path / "redis", server.port).start()
            admin = {"Authorization": f"Bearer {tokens.create(store, 'admin', 'a')[0]}"}
            editor = {"Authorization": f"Bearer {tokens.create(store, 'editor', 'e')[0]}"}
            register(client, admin, receiver.url, ["reaction.*"])
            put_article(client, editor, "outage")
            vote(client, "outage", mint(app))
            deadline = time.monotonic() + 15
            while not receiver.delivered:
                assert time.monotonic() < deadline and thread.is_alive()
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(10)
            server.stop()
    assert not thread.is_alive()


# -- what admins see: a test delivery, the last attempt, dead letters -------------------
def test_a_test_event_is_delivered_signed_and_shows_as_the_last_attempt(
    client: FlaskClient, admin: dict[str, str], store: Any,
) -> None:
    with Receiver() as receiver:
        hook = register(client, admin, receiver.url, ["poll.closed"])  # not a test type
        queued = client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=admin)
        assert queued.status_code == 202
        delivery = queued.json["delivery"]
        assert delivery.startswith(hook["id"] + ":test_")
        run_until(Worker(store, "test"), lambda: len(receiver.delivered) == 1)
        [body] = receiver.delivered_bodies()
        assert body["type"] == "webhook.test" and body["id"] == delivery
        assert body["data"] == {"webhook": hook["id"]}
        assert signature_ok(SECRET, receiver.delivered[0])
    [listed] = client.get("/api/v1/webhooks", headers=admin).json["webhooks"]
    last = listed["last_attempt"]
    assert (last["outcome"], last["attempts"], last["delivery"], last["error"]) == (
        "delivered", 1, delivery, None)
    assert webhooks.retry_count(store) == 0


def test_a_failing_endpoint_shows_failed_then_dead_and_is_listed_dead(
    app: Flask, client: FlaskClient, admin: dict[str, str], admin_desk: Any, store: Any,
) -> None:
    with Receiver(fail=lambda n: True) as receiver:
        hook = register(client, admin, receiver.url, ["*"])
        client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=admin)
        worker = Worker(store, "test")
        run_until(worker, lambda: len(receiver.requests) >= 1)
        last = client.get("/api/v1/webhooks", headers=admin).json["webhooks"][0]["last_attempt"]
        assert last["outcome"] in ("failed", "dead") and last["error"] == "http 500"
        run_until(worker, lambda: bool(webhooks.dead_letters(store)))
    last = client.get("/api/v1/webhooks", headers=admin).json["webhooks"][0]["last_attempt"]
    assert (last["outcome"], last["attempts"]) == ("dead", app.config["WEBHOOK_MAX_ATTEMPTS"])
    [dead] = client.get("/api/v1/webhooks/dead-letters", headers=admin).json["dead_letters"]
    assert dead["webhook"] == hook["id"] and dead["error"] == "http 500"
    assert dead["attempts"] == app.config["WEBHOOK_MAX_ATTEMPTS"]
    assert json.loads(dead["body"])["type"] == "webhook.test"
    assert abs(time.time() - datetime.fromisoformat(dead["at"]).timestamp()) < 60
    page = admin_desk.get("/dashboard/admin/webhooks").get_data(as_text=True)
    assert "Gave up" in page and dead["delivery"] in page and "http 500" in page


def test_the_dashboard_queues_a_test_event(
    client: FlaskClient, admin: dict[str, str], admin_desk: Any, store: Any,
) -> None:
    with Receiver() as receiver:
        hook = register(client, admin, receiver.url, ["*"])
        page = admin_desk.get("/dashboard/admin/webhooks").get_data(as_text=True)
        assert "None yet" in page and "Send test" in page
        sent = admin_desk.post(f"/dashboard/admin/webhooks/{hook['id']}/test", {})
        assert sent.status_code == 302 and "queued" in sent.headers["Location"]
        run_until(Worker(store, "test"), lambda: len(receiver.delivered) == 1)
    page = admin_desk.get("/dashboard/admin/webhooks").get_data(as_text=True)
    assert "Delivered" in page
    assert admin_desk.post("/dashboard/admin/webhooks/wh_nope/test", {}).status_code == 404


def test_test_and_dead_letters_are_for_admins_and_known_webhooks(
    client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
) -> None:
    hook = register(client, admin, HOOK, ["*"])
    for method, path in (("post", f"/api/v1/webhooks/{hook['id']}/test"),
                         ("get", "/api/v1/webhooks/dead-letters")):
        assert getattr(client, method)(path).status_code == 401
        assert getattr(client, method)(path, headers=editor).status_code == 403
    unknown = client.post("/api/v1/webhooks/wh_0000000000000000/test", headers=admin)
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "not_found"
    assert webhooks.retry_count(store) == 0  # nothing queued for it
    assert client.get("/api/v1/webhooks/dead-letters", headers=admin).json == {
        "dead_letters": []}
    # Removing the webhook removes its last attempt too.
    webhooks.record_attempt(store, webhooks.delivery(hook["id"], {"id": "x"}), "delivered", None)
    client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin)
    assert webhooks.last_attempts(store) == {}


def test_the_dashboard_retries_a_dead_letter_with_its_exact_body(
    app: Flask, client: FlaskClient, admin: dict[str, str], admin_desk: Any, store: Any,
) -> None:
    attempts = app.config["WEBHOOK_MAX_ATTEMPTS"]
    with Receiver(fail=lambda n: n < attempts) as receiver:  # down, then back
        hook = register(client, admin, receiver.url, ["*"])
        client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=admin)
        worker = Worker(store, "test")
        run_until(worker, lambda: bool(webhooks.dead_letters(store)))
        [dead] = webhooks.dead_letters(store)
        page = admin_desk.get("/dashboard/admin/webhooks").get_data(as_text=True)
        assert f"/dashboard/admin/webhooks/dead/{dead['id']}/retry" in page

        retried = admin_desk.post(f"/dashboard/admin/webhooks/dead/{dead['id']}/retry", {})
        assert retried.status_code == 302 and "queued" in retried.headers["Location"]
        assert webhooks.dead_letters(store) == []
        run_until(worker, lambda: len(receiver.delivered) == 1)
        assert receiver.delivered[0]["body"] == dead["body"].encode()
        assert signature_ok(SECRET, receiver.delivered[0])
    last = client.get("/api/v1/webhooks", headers=admin).json["webhooks"][0]["last_attempt"]
    assert (last["outcome"], last["attempts"], last["delivery"]) == (
        "delivered", 1, dead["delivery"])
    for gone in (dead["id"], "not-an-id"):
        assert admin_desk.post(f"/dashboard/admin/webhooks/dead/{gone}/retry",
                               {}).status_code == 404
