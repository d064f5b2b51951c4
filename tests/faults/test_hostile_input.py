"""Hostile input against `engage serve`: clear 4xx, steady memory, nothing stored.

Every request here is one a careless or malicious client could send: bodies far over
the limit, JSON nested a hundred thousand deep, bytes that are not UTF-8, enormous
headers, and ids of every odd shape (including braces that would break hash tags).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from engage import create_app
from engage.identity import get_identity
from engage.store import get_store, tokens
from tests.conftest import ARTICLE
from tests.faults import SECRET, exchange
from tests.redis_server import RedisServer
from tests.test_server import Served

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
        "SECRET_KEY": SECRET,
    })
    with app.app_context():
        editor = tokens.create(get_store(), "editor", "hostile")[0]
        reader = get_identity().mint_reader()
    served = Served(redis_server.url, tmp_path, workers=1, SECRET_KEY=SECRET)
    headers = {"Authorization": f"Bearer {editor}"}
    created = requests.put(
        f"{served.url}/api/v1/articles/target", json=ARTICLE, headers=headers, timeout=5
    )
    assert created.status_code == 201, created.text
    # One honest vote, so the address key and a voter exist before the snapshot.
    voted = requests.put(
        f"{served.url}/api/v1/articles/target/reactions/mine", json={"choice": "yes"},
        headers={"X-Engage-Reader": reader}, timeout=5,
    )
    assert voted.status_code == 200, voted.text
    # `engage serve`'s aggregates thread files the vote under its reader in its own
    # time (store/readers.py): wait for it, so the snapshots see it either both or none.
    client, deadline = redis_server.client(), time.monotonic() + 10
    while not client.zcard("engage:readers") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.zcard("engage:readers") == 1
    try:
        yield {"url": served.url, "editor": headers, "reader": {"X-Engage-Reader": reader},
               "served": served}
    finally:
        served.stop()


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
    yield from hostile_bodies(s)
    for odd in ODD_IDS:
        encoded = quote(odd)
        yield "GET", f"{url}/api/v1/articles/{encoded}/reactions", {}
        yield "GET", f"{url}/api/v1/articles/{encoded}", {}
        yield "PUT", f"{url}/api/v1/articles/{encoded}/reactions/mine", {
            "json": {"choice": "yes"}, "headers": reader}
        yield "DELETE", f"{url}/api/v1/articles/{encoded}/reactions/mine", {"headers": reader}
        yield "PUT", f"{url}/api/v1/articles/{encoded}", {"json": ARTICLE, "headers": editor}
        yield "GET", f"{url}/api/v1/reactions?article={encoded}", {}


HUGE_INT = b"9" * 5000  # over Python's int-from-string digit limit
BODY_ROUTES = (  # (method, path, auth, a valid body to break)
    ("PUT", "/api/v1/articles/target/reactions/mine", "reader", {"choice": "yes"}),
    ("PUT", "/api/v1/polls/nopoll/votes/mine", "reader", {"options": ["o1"]}),
    ("POST", "/api/v1/articles/target/links/impressions", "", {"links": ["l1"]}),
    ("POST", "/api/v1/polls", "editor", {"question": "Q?", "options": ["a", "b"]}),
    ("PUT", "/api/v1/articles/target/links", "editor", [{"title": "t", "url": "https://x.org"}]),
    ("PUT", "/api/v1/articles/other", "editor", dict(ARTICLE)),
    ("PATCH", "/api/v1/polls/nopoll", "editor", {"status": "closed"}),
)
# Bodies that are not JSON as RFC 8259 has it, or that Python reads but nobody should.
BROKEN_JSON = (
    b'{"x": ' + HUGE_INT + b"}", b"[" + HUGE_INT + b"]", b"-" + HUGE_INT,
    b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}', b'{"x": 1e999}',
    b'{"x": 1, "x": 2}', b'{"a": {"b": 1, "b": 1}}',
    b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"x": "\xc0\xaf"}', b"\xff\xfe{\x00}\x00", b'\xef\xbb\xbf{"x": 1}',
    b'{"x": "\\ud800"}', b'{"choice": "\\udfff"}', b"", b" ", b"nul", b"{'x': 1}", b"{,}", b"\x00",
)


OUT_OF_RANGE_TIMES = (
    "0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+23:59", "0001-01-01", "9999-12-31", "0999-12-31T23:59:59Z",
)


def hostile_bodies(s: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every body route fed broken JSON, wrong JSON types and huge values."""
    url = s["url"]
    json_type = {"Content-Type": "application/json"}
    for method, path, who, valid in BODY_ROUTES:
        auth = s[who] if who else {}
        for raw in BROKEN_JSON:
            yield method, url + path, {"data": raw, "headers": {**auth, **json_type}}
        for wrong in (None, True, 1, -1, 10**30, 1.5, "x", {}, [valid], [[[]]]):
            yield method, url + path, {"data": json.dumps(wrong), "headers": {**auth, **json_type}}
        items = valid if isinstance(valid, dict) else valid[0]
        for field in items:
            for value in (None, 10**30, -(10**30), 1e308, True, {}, "x" * 60_000, "\ud800",
                          "\u202e" * 1000, "\U0001f600" * 1000, {"$gt": ""}, [None] * 1000):
                bad = {**items, field: value}
                body = bad if isinstance(valid, dict) else [bad]
                yield method, url + path, {"data": json.dumps(body),
                                           "headers": {**auth, **json_type}}
    # Times whose offset takes them past what a datetime holds, or out of any sane range.
    timed = (("PUT", "/api/v1/articles/other", dict(ARTICLE), "published_at"),
             ("POST", "/api/v1/polls", {"question": "Q?", "options": ["a", "b"]}, "closes_at"),
             ("PATCH", "/api/v1/polls/nopoll", {}, "closes_at"))
    for when in OUT_OF_RANGE_TIMES:
        for method, path, body, field in timed:
            yield method, url + path, {"json": {**body, field: when}, "headers": s["editor"]}
    for port in ("99999", "0", "65536", "-1", "99999999999999999999", "x"):
        yield "PUT", url + "/api/v1/articles/target/links", {"json": [
            {"title": "t", "url": f"https://example.com:{port}/a"}], "headers": s["editor"]}
    for bad_url in ("http://[::1/x", "https://[zz]/", "http://exa mple.com:80:80/",
                    "https://example.com:/a", "http:///a", "https://" + "a" * 3000 + ".com/"):
        yield "PUT", url + "/api/v1/articles/target/links", {"json": [
            {"title": "t", "url": bad_url}], "headers": s["editor"]}


def hostile_queries(s: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Query parameters out of every range, on the editor's and the public reads."""
    url, editor = s["url"], s["editor"]
    huge = "1" + "0" * 100
    for query in (f"limit={huge}", "limit=-1", "limit=0", f"offset={huge}", "offset=-5",
                  "limit=1e3", "limit=" + "9" * 5000, "limit=NaN", "sort=../../x",
                  "since=garbage", "until=garbage", "since=0001-01-01T00:00:00Z",
                  "since=9999-12-31T23:59:59Z", "since=2026-13-45", f"since={huge}",
                  "since=2026-01-01T00:00:00%2B99:99", "section=" + "s" * 5000,
                  "since=2026-02-01&until=2026-01-01",
                  *(f"since={quote(t)}" for t in OUT_OF_RANGE_TIMES),
                  *(f"until={quote(t)}" for t in OUT_OF_RANGE_TIMES)):
        yield "GET", f"{url}/api/v1/stats/articles?{query}", {"headers": editor}
        yield "GET", f"{url}/api/v1/stats/sections?{query}", {"headers": editor}
        yield "GET", f"{url}/api/v1/articles/target/stats?{query}", {"headers": editor}
    for query in ("bucket=minute", "bucket=" + "x" * 5000, "format=xml", "type=..",
                  "article=%FF", f"since={huge}"):
        yield "GET", f"{url}/api/v1/articles/target/stats?{query}", {"headers": editor}
        yield "GET", f"{url}/api/v1/events/export?{query}", {"headers": editor}
    for query in ("article=" + "a" * 200, "article=", "article=%00", "article=%E2%80%AE"):
        yield "GET", f"{url}/api/v1/widget?{query}", {}


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
    # Routes that never read a body refuse one over the limit all the same.
    for method, path in ((b"GET", b"/healthz"), (b"GET", b"/r/nolink"),
                         (b"GET", b"/api/v1/articles/target"), (b"DELETE", vote),
                         (b"GET", b"/dashboard/signin"), (b"GET", b"/widget.js")):
        yield (method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n" % BIG + b"x" * 16384)
        # Streamed: no length announced, so the server reads up to the limit to know.
        chunk = b"x" * 32768
        yield (method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3 + b"0\r\n\r\n")


def check_answered(method: str, url: str, response: requests.Response) -> None:
    """Not a 5xx; an error (unknown query parameters are tolerated) in the JSON shape."""
    if response.status_code >= 400:
        check_json_4xx(method, url, response)


def check_json_4xx(method: str, url: str, response: requests.Response) -> None:
    where = f"{method} {url[:120]}"
    assert 400 <= response.status_code < 500, (where, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), where
    error = response.json()["error"]
    assert error["code"] and error["message"], where


def snapshot(redis_server: RedisServer) -> tuple[list[str], list[str], dict[str, Any]]:
    client = redis_server.client()
    # The rate limiter counts every request it sees, well-formed or not, by design; and
    # an export that was answered (an odd but valid range: an empty export) is in the
    # audit log of staff exports, by design too.
    for key in [*client.scan_iter("*:rl:*"), "engage:audit"]:
        client.delete(key)
    # Left out: the cross-article figures, which `engage serve`'s aggregates thread
    # builds in its own time from the fixture's honest vote (and moves on every hour).
    # Whatever a request stored would show in its article's own keys.
    keys = sorted(k for k in client.scan_iter() if not k.startswith("engage:x:{stats}"))
    voters = {k: client.hgetall(k) for k in keys if k.endswith(":voters")}
    return keys, client.execute_command("DEBUG", "DIGEST-VALUE", *keys), voters


def rss(served: Served) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in served.workers())


def test_hostile_requests_get_clear_4xx_and_store_nothing(
    server: dict[str, Any], redis_server: RedisServer
) -> None:
    before = snapshot(redis_server)
    workers = server["served"].workers()
    session = requests.Session()
    # A first round warms up the worker (imports, caches) before memory is measured.
    port = int(server["url"].rsplit(":", 1)[1])
    for method, url, kwargs in hostile_requests(server):
        check_json_4xx(method, url, session.request(method, url, timeout=10, **kwargs))
    # Oversized bodies are announced, not sent in full: the server answers 413 from the
    # headers, and a client still pushing megabytes would only see the connection reset.
    for head in oversized_requests(server):
        check_raw_413(exchange(port, head))
    for method, url, kwargs in hostile_queries(server):
        check_answered(method, url, session.request(method, url, timeout=10, **kwargs))
    rss_before = rss(server["served"])
    sent = 0
    for _ in range(3):
        for method, url, kwargs in hostile_requests(server):
            check_json_4xx(method, url, session.request(method, url, timeout=10, **kwargs))
            sent += 1
        for head in oversized_requests(server):
            check_raw_413(exchange(port, head))
            sent += 1
    rss_after = rss(server["served"])
    print(f"hostile requests: {sent}; worker RSS {rss_before >> 20} MiB -> {rss_after >> 20} MiB")
    assert sent >= 300
    assert rss_after - rss_before < 8 * 1024 * 1024
    assert snapshot(redis_server) == before
    assert server["served"].workers() == workers  # no worker died and was replaced
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


def test_huge_and_broken_heads_are_refused_or_answered(
    server: dict[str, Any], redis_server: RedisServer
) -> None:
    """granian refuses some of these before the app, with an empty answer (code None
    below); engage answers the rest, a header of 100 KB included. Each within 2 s,
    nothing stored, the worker unharmed."""
    before = snapshot(redis_server)
    workers = server["served"].workers()
    port = int(server["url"].rsplit(":", 1)[1])
    path = b"/api/v1/articles/target/reactions"
    heads = [
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
         200, ""),
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: v\r\n" % n for n in range(500)) + b"\r\n", 431, None),
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"),
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Engage-Reader: " + b"\xff" * 3000
         + b"\r\n\r\n", 401, "invalid_reader"),
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Engage-Reader: a\x00b\r\n\r\n",
         400, None),
        (b"GET /api/v1/reactions?" + b"&".join([b"article=a"] * 1000) + b" HTTP/1.1\r\n\r\n",
         422, "validation_failed"),
        (b"PUT " + path + b"/mine HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         b"Content-Length: 99999999999999999999\r\n\r\n{}", 400, None),
    ]
    for head, status, code in heads:
        started = time.monotonic()
        raw = exchange(port, head.replace(b"\r\n", b"\r\nConnection: close\r\n", 1))
        assert status_of(raw) == status, (head[:60], raw[:300])
        if code is None:
            assert raw.endswith(b"\r\n\r\n") and b"content-length: 0" in raw.lower(), raw
        elif code:
            assert check_json_error(raw) == code, head[:60]
        assert time.monotonic() - started < 2, head[:60]
    assert snapshot(redis_server) == before
    assert server["served"].workers() == workers
    ok = requests.get(server["url"] + path.decode(), timeout=5)
    assert ok.status_code == 200


def metric(text: str, route: str, status: str) -> float:
    """engage_http_requests_total of GET `route` answered with `status` (a class)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "engage_http_requests_total"
        and sample.labels == {"route": route, "method": "GET", "status": status}
    )


def test_what_the_server_sends_is_what_it_logs_and_counts(
    server: dict[str, Any], redis_server: RedisServer
) -> None:
    """A link stored before URLs were checked, a sign-in `next` with CR/LF: a 4xx or a
    safe redirect, never a 500, and the log and /metrics say the status that went out."""
    url = server["url"]
    saved = requests.put(f"{url}/api/v1/articles/target/links", headers=server["editor"],
                         json=[{"title": "t", "url": "https://example.com/a"}], timeout=5)
    assert saved.status_code == 200, saved.text
    link_id = saved.json()["links"][0]["id"]
    client = redis_server.client()
    key = "engage:a:{target}:links"
    client.set(key, client.get(key).replace("https://example.com/a",
                                            "https://example.com:99999/a"))
    route = "/r/{link_id}"
    before = requests.get(url + "/metrics", timeout=5).text
    for _ in range(3):
        response = requests.get(f"{url}/r/{link_id}", allow_redirects=False, timeout=5,
                                headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) "
                                         "Gecko/20100101 Firefox/121.0"})
        check_json_4xx("GET", response.url, response)
        assert response.status_code == 404 and "Location" not in response.headers
    after = requests.get(url + "/metrics", timeout=5).text
    assert metric(after, route, "4xx") - metric(before, route, "4xx") == 3
    assert metric(after, route, "3xx") == metric(before, route, "3xx")
    assert metric(after, route, "5xx") == 0

    token = server["editor"]["Authorization"].split(" ", 1)[1]
    for target in ("/dashboard%0d%0aSet-Cookie:%20a=b", "/dashboard%0aX:%20y", "/dashboard%00"):
        session = requests.Session()
        form = session.get(f"{url}/dashboard/signin", timeout=5).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf
        response = session.post(f"{url}/dashboard/signin?next={target}", timeout=5,
                                 data={"token": token, "csrf_token": csrf.group(1)},
                                 allow_redirects=False)
        assert response.status_code == 302, response.text[:200]
        assert response.headers["Location"].endswith("/dashboard")
        assert "a=b" not in response.headers.get("Set-Cookie", "")
    metrics_text = requests.get(url + "/metrics", timeout=5).text
    # No route answered a 5xx (a route's 5xx series starts with its first).
    fives = [s.value for f in text_string_to_metric_families(metrics_text) for s in f.samples
             if s.name == "engage_http_requests_total" and s.labels["status"] == "5xx"]
    assert sum(fives) == 0, fives
    log = server["served"].log()
    assert " 500 " not in log and "Traceback" not in log
    assert re.search(r"GET /r/\{link_id\} 404 ", log), log[-2000:]
