"""Hostile input against engage under gunicorn: clear 4xx, steady memory, nothing stored.

Every request here is one a careless or malicious client could send: bodies far over
the limit, JSON nested a hundred thousand deep, bytes that are not UTF-8, enormous
headers, and ids of every odd shape (including braces that would break hash tags).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from engage import create_app
from engage.identity import get_identity
from engage.store import get_store, tokens
from tests.conftest import ARTICLE
from tests.faults import Gunicorn, exchange
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

ODD_IDS = [
    "café", "日本語", "a b", " a", "a ", "a" * 129, "..", ".", "-a", "_a", "a/b",
    "%00", "a%00b", "{x}", "a{b}", "}", "{", "{}", "a\tb", "a\nb", "a;b", "a'b",
    'a"b', "a<b>", "a*", "a?b", "a#b", "\u202eevil", "\U0001f600", "a\u0301",
]

BIG = 2 * 1024 * 1024


@pytest.fixture
def server(redis_server: RedisServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    redis_server.client().flushall()
    app = create_app({
        "REDIS_URL": redis_server.url, "DATA_DIR": str(tmp_path), "LOG_JSON": False,
        "SECRET_KEY": "fault-tests-secret-key-0123456789",
    })
    with app.app_context():
        editor = tokens.create(get_store(), "editor", "hostile")[0]
        reader = get_identity().mint_reader()
    gunicorn = Gunicorn(redis_server.url, tmp_path, workers=1, threads=4)
    # engage's worker: what gunicorn itself refuses gets engage's JSON error too.
    gunicorn.args[gunicorn.args.index("--worker-class") + 1] = "engage.server.ThreadWorker"
    gunicorn.start()
    headers = {"Authorization": f"Bearer {editor}"}
    created = requests.put(
        f"{gunicorn.url}/api/v1/articles/target", json=ARTICLE, headers=headers, timeout=5
    )
    assert created.status_code == 201, created.text
    # One honest vote, so the address key and a voter exist before the snapshot.
    voted = requests.put(
        f"{gunicorn.url}/api/v1/articles/target/reactions/mine", json={"choice": "yes"},
        headers={"X-Engage-Reader": reader}, timeout=5,
    )
    assert voted.status_code == 200, voted.text
    try:
        yield {"url": gunicorn.url, "editor": headers, "reader": {"X-Engage-Reader": reader},
               "gunicorn": gunicorn}
    finally:
        gunicorn.stop()


def quote(raw: str) -> str:
    return requests.utils.quote(raw, safe="")


def hostile_requests(s: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, url, requests kwargs) for every hostile request of one round."""
    url, editor, reader = s["url"], s["editor"], s["reader"]
    vote_url = f"{url}/api/v1/articles/target/reactions/mine"
    json_type = {"Content-Type": "application/json"}
    # Deep but under the size limit, so the JSON decoder itself meets it.
    yield "PUT", vote_url, {"data": b"[" * 30_000 + b"]" * 30_000,
                            "headers": {**reader, **json_type}}
    yield "PUT", vote_url, {"data": b'{"choice":' * 5000 + b'"yes"' + b"}" * 5000,
                            "headers": {**reader, **json_type}}
    yield "PUT", f"{url}/api/v1/articles/deep", {
        "data": b'{"tags":' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        "headers": {**editor, **json_type}}
    yield "PUT", vote_url, {"data": b'{"choice": "\xff\xfe"}', "headers": {**reader, **json_type}}
    yield "PUT", vote_url, {"data": b"\xc3\x28\xa0\xa1", "headers": {**reader, **json_type}}
    yield "PUT", vote_url, {"data": b'{"choice": "yes"', "headers": {**reader, **json_type}}
    yield "PUT", vote_url, {"data": b'{"choice": "yes"}', "headers": {
        **reader, "Content-Type": "text/plain"}}
    yield "PUT", vote_url, {"json": {"choice": "yes", "extra": 1}, "headers": reader}
    yield "PUT", vote_url, {"json": {"choice": "\u0000yes"}, "headers": reader}
    yield "PUT", vote_url, {"json": {"choice": "no", "reason": "x" * 10_000}, "headers": reader}
    yield "PUT", vote_url, {"json": ["yes"], "headers": reader}
    yield "PUT", vote_url, {"json": {"choice": "yes"}, "headers": {"X-Engage-Reader": "x" * 4000}}
    yield "PUT", vote_url, {"json": {"choice": "yes"},
                            "headers": {"X-Engage-Reader": "é{}.sig"}}
    yield "PUT", vote_url, {"json": {"choice": "yes"},
                            "headers": {"X-Engage-Reader": reader["X-Engage-Reader"] + "x"}}
    yield "PUT", f"{url}/api/v1/articles/sneaky", {"json": ARTICLE,
                                                    "headers": {"Authorization": "Bearer eng_x.y"}}
    yield "PUT", f"{url}/api/v1/articles/sneaky", {"json": ARTICLE, "headers": {
        "Authorization": "Bearer " + "eng_" + "a" * 5000 + ".b"}}
    yield "GET", f"{url}/api/v1/reactions?" + "&".join(["article=a"] * 300), {}
    yield "GET", f"{url}/api/v1/reactions?article=" + quote("{x}"), {}
    yield "GET", f"{url}/api/v1/reactions?article=%FF%FE", {}
    for odd in ODD_IDS:
        encoded = quote(odd)
        yield "GET", f"{url}/api/v1/articles/{encoded}/reactions", {}
        yield "GET", f"{url}/api/v1/articles/{encoded}", {}
        yield "PUT", f"{url}/api/v1/articles/{encoded}/reactions/mine", {
            "json": {"choice": "yes"}, "headers": reader}
        yield "DELETE", f"{url}/api/v1/articles/{encoded}/reactions/mine", {"headers": reader}
        yield "PUT", f"{url}/api/v1/articles/{encoded}", {"json": ARTICLE, "headers": editor}
        yield "GET", f"{url}/api/v1/reactions?article={encoded}", {}


def oversized_requests(s: dict[str, Any]) -> Iterator[bytes]:
    """Heads of requests whose declared body is over the limit (sent raw, see below)."""
    reader, editor = s["reader"]["X-Engage-Reader"], s["editor"]["Authorization"]
    vote = b"/api/v1/articles/target/reactions/mine"
    for path, auth, body in (
        (vote, b"X-Engage-Reader: " + reader.encode(), b"x" * BIG),
        (vote, b"X-Engage-Reader: " + reader.encode(), b"[" * 100_000 + b"]" * 100_000),
        (b"/api/v1/articles/big", b"Authorization: " + editor.encode(),
         b'{"title": "' + b"a" * BIG + b'"}'),
    ):
        yield (b"PUT " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\n"
               + auth + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:16384])


def check_json_4xx(method: str, url: str, response: requests.Response) -> None:
    where = f"{method} {url[:120]}"
    assert 400 <= response.status_code < 500, (where, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), where
    error = response.json()["error"]
    assert error["code"] and error["message"], where


def snapshot(redis_server: RedisServer) -> tuple[int, str, dict[str, Any]]:
    client = redis_server.client()
    voters = {k: client.hgetall(k) for k in client.keys("*:voters")}
    return client.dbsize(), client.execute_command("DEBUG", "DIGEST"), voters


def rss(gunicorn: Gunicorn) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in gunicorn.worker_pids())


def test_hostile_requests_get_clear_4xx_and_store_nothing(
    server: dict[str, Any], redis_server: RedisServer
) -> None:
    before = snapshot(redis_server)
    workers = server["gunicorn"].worker_pids()
    session = requests.Session()
    # A first round warms up the worker (imports, caches) before memory is measured.
    port = int(server["url"].rsplit(":", 1)[1])
    for method, url, kwargs in hostile_requests(server):
        check_json_4xx(method, url, session.request(method, url, timeout=10, **kwargs))
    # Oversized bodies are announced, not sent in full: the server answers 413 from the
    # headers, and a client still pushing megabytes would only see the connection reset.
    for head in oversized_requests(server):
        check_raw_413(exchange(port, head))
    rss_before = rss(server["gunicorn"])
    sent = 0
    for _ in range(3):
        for method, url, kwargs in hostile_requests(server):
            check_json_4xx(method, url, session.request(method, url, timeout=10, **kwargs))
            sent += 1
        for head in oversized_requests(server):
            check_raw_413(exchange(port, head))
            sent += 1
    rss_after = rss(server["gunicorn"])
    print(f"hostile requests: {sent}; worker RSS {rss_before >> 20} MiB -> {rss_after >> 20} MiB")
    assert sent >= 300
    assert rss_after - rss_before < 8 * 1024 * 1024
    assert snapshot(redis_server) == before
    assert server["gunicorn"].worker_pids() == workers  # no worker died and was replaced
    health = session.get(server["url"] + "/api/v1/articles/target/reactions", timeout=5)
    assert health.status_code == 200 and health.json()["total"] == 1




def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def check_json_error(raw: bytes) -> str:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    code: str = json.loads(body)["error"]["code"]
    return code


def check_raw_413(raw: bytes) -> None:
    assert status_of(raw) == 413, raw[:300]
    assert check_json_error(raw) == "payload_too_large"


def test_huge_headers_are_refused_by_the_server(
    server: dict[str, Any], redis_server: RedisServer
) -> None:
    """gunicorn refuses most of these before the app, engage's worker answers them with the
    JSON error; the rest engage answers itself. The worker is unharmed."""
    before = snapshot(redis_server)
    port = int(server["url"].rsplit(":", 1)[1])
    path = b"/api/v1/articles/target/reactions"
    heads = [
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
         431, "headers_too_large"),
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: v\r\n" % n for n in range(500)) + b"\r\n", 431, "headers_too_large"),
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Engage-Reader: " + b"\xff" * 3000
         + b"\r\n\r\n", 401, "invalid_reader"),
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Engage-Reader: a\x00b\r\n\r\n",
         400, "bad_request"),
        (b"GET /api/v1/reactions?" + b"&".join([b"article=a"] * 1000) + b" HTTP/1.1\r\n\r\n",
         414, "uri_too_long"),
        (b"PUT " + path + b"/mine HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         b"Content-Length: 99999999999999999999\r\n\r\n{}", 413, "payload_too_large"),
    ]
    for head, status, code in heads:
        started = time.monotonic()
        raw = exchange(port, head.replace(b"\r\n", b"\r\nConnection: close\r\n", 1))
        assert status_of(raw) == status, (head[:60], raw[:300])
        assert check_json_error(raw) == code, head[:60]
        assert time.monotonic() - started < 2, head[:60]
    assert snapshot(redis_server) == before
    ok = requests.get(server["url"] + path.decode(), timeout=5)
    assert ok.status_code == 200
