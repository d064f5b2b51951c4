"""The compose stack's front door: deploy/nginx/nginx.conf under Debian's nginx.

The shipped file runs as it is, but for its listening address, its upstream (a test
engage on a free loopback port) and the directory of its cache and temporary files.
Clients come from other loopback addresses (127.0.0.2, 127.0.0.3, ...) than the one
nginx reaches engage from (127.0.0.1), so what engage makes of the forwarded address,
and the per-address connection cap, can be seen. Everything on loopback, bounded.
"""

from __future__ import annotations

import http.client
import json
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Request

from engage.identity import Identity, get_identity
from engage.store import get_store, tokens
from tests.conftest import make_app
from tests.live_server import mint_readers, serving
from tests.redis_server import RedisServer, free_port, terminate
from tests.test_server import SECRET as SERVER_SECRET
from tests.test_server import Served

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
pytestmark = pytest.mark.skipif(NGINX is None,
                                reason="nginx (Debian package nginx) is not installed")

ORIGIN = "https://news.example.com"
NGINX_ADDRESS = "127.0.0.1"  # where nginx connects to engage from
READER_ADDRESS = "127.0.0.2"
OTHER_ADDRESS = "127.0.0.3"
ARTICLES = [f"front-{n}" for n in range(5)]


def conf_value(directive: str) -> str:
    """The one value the shipped file gives a directive."""
    (value,) = re.findall(rf"^\s*{directive}\s+([^;{{]+);", NGINX_CONF.read_text(), re.M)
    return value


class Front:
    """The shipped nginx.conf in front of `upstream_port`, as a non-daemon nginx."""

    def __init__(self, upstream_port: int, log: Path) -> None:
        text = NGINX_CONF.read_text()
        changes = ("listen 8080;", "server engage:8000;", "/var/cache/nginx/")
        assert all(old in text for old in changes)
        # Not under pytest's temporary directory: nginx's workers drop root for
        # `nobody`, who must reach the cache through every parent directory.
        self.root = Path(tempfile.mkdtemp(prefix="engage-nginx-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.log = log
        for old, new in zip(changes, (f"listen 127.0.0.1:{self.port};",
                                      f"server 127.0.0.1:{upstream_port};",
                                      f"{self.root}/"), strict=True):
            text = text.replace(old, new)
        config = self.root / "nginx.conf"
        config.write_text(text)
        assert NGINX is not None
        # Appending: nginx writes its error log to this descriptor and its access log
        # to /dev/stdout, which it opens again, and neither may overwrite the other.
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [NGINX, "-p", str(self.root), "-c", str(config),
                 "-g", f"daemon off; pid {self.root}/nginx.pid;"],
                stdout=out, stderr=out)
        try:
            self.wait_listening()
        except BaseException:
            self.stop()
            raise

    def wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)

    def stop(self) -> None:
        terminate(self.process, 15)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Arrival:
    method: str
    path: str
    environ: dict[str, Any]


@dataclass
class Counting:
    """WSGI middleware in front of the app: every request that reached engage."""

    app: Any
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        kept = {k: v for k, v in environ.items() if isinstance(v, str)}
        with self.lock:
            self.arrivals.append(Arrival(environ["REQUEST_METHOD"], environ["PATH_INFO"], kept))
        return self.app(environ, start_response)

    def count(self, where: Callable[[Arrival], bool] = lambda a: True) -> int:
        with self.lock:
            return sum(1 for a in self.arrivals if where(a))


class Client:
    """HTTP/1.1 over one kept-alive connection from a chosen loopback address."""

    def __init__(self, port: int, source: str, timeout: float = 10) -> None:
        self.port, self.source, self.timeout = port, source, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None
                ) -> tuple[int, http.client.HTTPMessage, bytes]:
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                                   source_address=(self.source, 0))
        try:
            self.conn.request(method, path, body=data, headers=all_headers)
            response = self.conn.getresponse()
            raw = response.read()
        except OSError:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, response.headers, raw

    def json(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, http.client.HTTPMessage]:
        status, response_headers, raw = self.request(method, path, body, headers)
        return status, (json.loads(raw) if raw else None), response_headers

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def stalled_body(port: int, source: str, path: str) -> socket.socket:
    """A vote whose headers promise 1,000 bytes of body, of which one is sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0))
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: engage.test\r\n"
                 "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
    return sock


def answered(socks: Iterable[socket.socket], wait: float,
             enough: int | None = None) -> dict[socket.socket, int]:
    """The status each socket got within `wait` seconds (0: closed without answer),
    sooner once `enough` of them have one. Peeks, so a socket can be asked again."""
    statuses: dict[socket.socket, int] = {}
    deadline = time.monotonic() + wait
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map() and len(statuses) != enough:
            left = deadline - time.monotonic()
            if left < 0:
                break
            for key, _ in selector.select(left):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    head = ready.recv(64, socket.MSG_PEEK)
                except OSError:
                    head = b""
                statuses[ready] = int(head.split()[1]) if head.startswith(b"HTTP/") else 0
                selector.unregister(ready)
    return statuses


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)] if ordered else float("nan")


# -- a test engage behind the shipped configuration ------------------------------------------
@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"TRUSTED_PROXIES": [f"{NGINX_ADDRESS}/32"], "ALLOWED_ORIGINS": [ORIGIN],
            "READER_MINT_LIMIT": "5 per minute"}


@dataclass
class Stack:
    app: Flask
    engage: Counting
    front: Front
    editor: dict[str, str]

    def client(self, source: str = READER_ADDRESS) -> Client:
        return Client(self.front.port, source)


def register_articles(front: Front, editor: dict[str, str]) -> None:
    client = Client(front.port, OTHER_ADDRESS)
    for article in ARTICLES:
        status, body, _ = client.json("PUT", f"/api/v1/articles/{article}", {
            "title": article, "url": f"https://news.example.com/{article}",
            "section": "Front", "published_at": "2026-01-01T00:00:00Z",
        }, editor)
        assert status == 201, body
    client.close()


@pytest.fixture
def stack(app: Flask, tmp_path: Path) -> Iterator[Stack]:
    engage = Counting(app.wsgi_app)
    with app.app_context():
        editor, _ = tokens.create(get_store(), "editor", "front door")
    with serving(engage, keep_alive=True) as server:
        front = Front(server.server_port, tmp_path / "nginx.log")
        try:
            stack = Stack(app, engage, front, {"Authorization": f"Bearer {editor}"})
            register_articles(front, stack.editor)
            yield stack
        finally:
            front.stop()


def test_the_shipped_file_is_what_the_test_runs() -> None:
    """The three lines the test changes exist once each, and the file states the
    promises the documentation makes."""
    text = NGINX_CONF.read_text()
    assert conf_value("listen") == "8080"
    assert conf_value("server") == "engage:8000"
    assert conf_value("client_max_body_size") == "64k"  # ENGAGE_MAX_CONTENT_LENGTH
    assert conf_value("proxy_request_buffering") == "on"
    assert conf_value("proxy_set_header X-Forwarded-For") == "$remote_addr"
    assert "proxy_cache_valid" not in text  # engage's Cache-Control alone decides
    assert int(conf_value("limit_conn per_address")) > 0


def test_widget_loads_are_served_without_reaching_engage(stack: Stack) -> None:
    """10,000 anonymous widget loads (the script and the bundle, from a publisher's page,
    spread over five articles): at least 99% are answered by nginx alone."""
    loads = 10_000
    threads = 2
    failures: list[str] = []

    def load(n: int, first: int) -> None:
        client = stack.client()
        headers = {"Origin": ORIGIN, "Accept-Encoding": "gzip"}
        for i in range(first, first + n):
            article = ARTICLES[i % len(ARTICLES)]
            script = client.request("GET", "/widget.js", headers=headers)
            bundle = client.request("GET", f"/api/v1/widget?article={article}",
                                    headers=headers)
            if script[0] != 200 or bundle[0] != 200 or article not in json.loads(bundle[2])[
                    "articles"]:
                failures.append(f"{script[0]} {bundle[0]}")
        client.close()

    before = stack.engage.count()
    started = time.monotonic()
    workers = [threading.Thread(target=load, args=(loads // threads, k * loads // threads))
               for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    seconds = time.monotonic() - started
    reached = stack.engage.count() - before
    print(f"\n{loads} widget loads ({2 * loads} requests) in {seconds:.1f} s; "
          f"{reached} requests reached engage")
    assert not failures, failures[:5]
    # Each load that reached engage cost at least one request there.
    assert reached <= loads // 100, reached
    assert reached >= 1 + len(ARTICLES)  # the first script and bundles came from engage


def test_a_vote_shows_through_the_front_door_within_max_age(stack: Stack) -> None:
    """A vote is seen by anonymous readers once the cached counts reach their max-age
    (in nginx's whole seconds, plus the second engage's processes may keep counts),
    and not before; the voter sees it at once."""
    client = stack.client()
    path = f"/api/v1/articles/{ARTICLES[0]}/reactions"
    status, body, headers = client.json("GET", path)
    filled = time.monotonic()
    assert status == 200 and body["total"] == 0
    assert headers["X-Cache-Status"] == "MISS"
    (max_age_text,) = re.findall(r"max-age=(\d+)", headers["Cache-Control"])
    max_age = int(max_age_text)
    assert stack.app.config["CACHE_MAX_AGE"] == max_age
    (reader,) = mint_readers(stack.app, 1)
    status, body, _ = client.json("PUT", path + "/mine", {"choice": "yes"}, reader)
    assert status == 200 and body["total"] == 1
    status, body, headers = client.json("GET", path)
    assert headers["X-Cache-Status"] == "HIT" and body["total"] == 0
    # The voter sees the vote at once: reader reads pass the cache.
    status, body, headers = client.json("GET", f"/api/v1/widget/mine?article={ARTICLES[0]}",
                                        headers=reader)
    assert body["articles"][ARTICLES[0]]["mine"] == "yes"
    while True:
        status, body, headers = client.json("GET", path)
        assert status == 200
        if body["total"] == 1:
            seen = time.monotonic() - filled
            break
        assert time.monotonic() - filled < max_age + 5, "the vote never showed"
        time.sleep(0.05)
    print(f"\nvote visible to anonymous readers {seen:.2f} s after the counts were cached "
          f"(max-age {max_age})")
    # nginx keeps time in whole seconds (up to one more), and each engage process may
    # keep counts for a second (one more again, though here one process took the vote).
    assert max_age <= seen + 0.1 and seen <= max_age + 2.5


def test_reader_reads_and_writes_are_never_cached(stack: Stack) -> None:
    """Reader tokens, staff tokens and cookies pass the cache both ways, and so does
    every write; an anonymous read never gets a reader's answer."""
    client = stack.client()
    article = ARTICLES[1]
    path = f"/api/v1/articles/{article}/reactions"
    a, b = mint_readers(stack.app, 2)
    before = stack.engage.count()
    for _ in range(3):
        status, body, headers = client.json("PUT", path + "/mine", {"choice": "no"}, a)
        assert status == 200
    for _ in range(3):
        status, body, headers = client.json("GET", path, headers=a)
        assert status == 200 and body["mine"] == "no"
        assert headers["X-Cache-Status"] == "BYPASS"
    status, body, headers = client.json("GET", path, headers=b)
    assert body["mine"] is None and headers["X-Cache-Status"] == "BYPASS"
    for _ in range(2):
        status, body, _ = client.json("GET", f"/api/v1/widget/mine?article={article}",
                                      headers=a)
        assert body["articles"][article]["mine"] == "no"
    status, body, _ = client.json("GET", f"/api/v1/widget/mine?article={article}", headers=b)
    assert body["articles"][article]["mine"] is None
    assert stack.engage.count() - before == 3 + 3 + 1 + 2 + 1
    # An anonymous read: engage's anonymous answer, then the same from the cache.
    for expected in ("MISS", "HIT"):
        status, body, headers = client.json("GET", path)
        assert body["mine"] is None and headers["X-Cache-Status"] == expected
    # Staff tokens and cookies pass even where an anonymous copy is cached.
    bundle = f"/api/v1/widget?article={article}"
    client.json("GET", bundle)
    before = stack.engage.count()
    for personal in (stack.editor, {"Cookie": "session=anything"}):
        for _ in range(2):
            status, body, headers = client.json("GET", bundle, headers=personal)
            assert status == 200 and headers["X-Cache-Status"] == "BYPASS"
    status, _, headers = client.json("GET", bundle)
    assert headers["X-Cache-Status"] == "HIT"
    # Writes of every kind: a minted reader, a withdrawn vote.
    status, body, _ = client.json("POST", "/api/v1/readers", {})
    assert status == 201
    status, body, _ = client.json("DELETE", path + "/mine", headers=a)
    assert status == 200 and body["mine"] is None
    assert stack.engage.count() - before == 4 + 2


def test_the_client_address_reaches_engage(stack: Stack) -> None:
    """engage counts each reader by the address nginx saw, whatever the client claims
    in its own X-Forwarded-For."""
    limit = int(stack.app.config["READER_MINT_LIMIT"].split()[0])
    reader_client = stack.client(READER_ADDRESS)
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    for n in range(limit):
        status, _, _ = reader_client.json("POST", "/api/v1/readers", {},
                                          spoofed if n % 2 else None)
        assert status == 201
    status, body, _ = reader_client.json("POST", "/api/v1/readers", {}, spoofed)
    assert status == 429, body
    status, _, _ = stack.client(OTHER_ADDRESS).json("POST", "/api/v1/readers", {})
    assert status == 201
    mints = [a for a in stack.engage.arrivals if a.path == "/api/v1/readers"]
    assert len(mints) == limit + 2
    with stack.app.app_context():
        identity = get_identity()
        seen = [identity.client_address(Request(a.environ)) for a in mints]
    assert {a.environ["REMOTE_ADDR"] for a in mints} == {NGINX_ADDRESS}
    assert {a.environ["HTTP_X_FORWARDED_FOR"] for a in mints} == {READER_ADDRESS,
                                                                   OTHER_ADDRESS}
    assert seen == [READER_ADDRESS] * (limit + 1) + [OTHER_ADDRESS]


def test_refusals_of_the_front_door_are_engage_errors(stack: Stack, tmp_path: Path) -> None:
    """What nginx refuses itself answers in engage's error shape; a batch read of 100
    long ids still fits in a request line."""
    client = stack.client()
    before = stack.engage.count()
    refusals = [
        (client.json("PUT", f"/api/v1/articles/{ARTICLES[0]}/reactions/mine",
                      {"choice": "yes", "pad": "x" * 70_000}), 413, "payload_too_large"),
        (client.json("GET", "/api/v1/reactions?" + "article=a&" * 4000), 414, "uri_too_long"),
        # No sign-in on /metrics: Prometheus reads it on the compose network instead.
        (client.json("GET", "/metrics"), 404, "not_found"),
    ]
    for (status, body, headers), refused_with, code in refusals:
        assert status == refused_with and body["error"]["code"] == code, (status, body)
        assert headers["Content-Type"] == "application/json"
    assert stack.engage.count() == before
    ids = [f"{n:03d}" + "x" * 125 for n in range(100)]
    batch = "/api/v1/reactions?" + "&".join(f"article={i}" for i in ids)
    for cache_status in ("MISS", "HIT"):
        status, body, headers = client.json("GET", batch)
        assert status == 200 and body["unknown"] == ids
        assert headers["X-Cache-Status"] == cache_status
    # With engage gone, nginx's 502 becomes engage's 503 with Retry-After.
    nowhere = Front(free_port(), tmp_path / "nowhere.log")
    try:
        status, body, headers = Client(nowhere.port, READER_ADDRESS).json("GET", "/healthz")
    finally:
        nowhere.stop()
    assert status == 503 and body["error"]["code"] == "service_unavailable"
    assert int(headers["Retry-After"]) > 0


def test_stalled_bodies_never_reach_engage(stack: Stack) -> None:
    """Bodies that stop after one byte wait in nginx, which refuses those over the
    per-address cap at once and times out the rest; engage never sees one, and other
    clients read and vote meanwhile."""
    cap = int(conf_value("limit_conn per_address"))
    body_timeout = int(conf_value("client_body_timeout").rstrip("s"))
    path = f"/api/v1/articles/{ARTICLES[2]}/reactions/mine"
    extra = 8
    socks = []
    try:
        for _ in range(cap + extra):
            socks.append(stalled_body(stack.front.port, READER_ADDRESS, path))
        refused = answered(socks, 5, enough=extra)
        # The requests over the cap were refused at once; the rest are held.
        assert list(refused.values()).count(429) == extra, refused.values()
        sample = next(iter(refused)).recv(4096).decode()
        assert "\r\nRetry-After: " in sample and '"code": "rate_limited"' in sample
        held = [s for s in socks if s not in refused]
        assert len(held) == cap
        other = stack.client(OTHER_ADDRESS)
        readers = mint_readers(stack.app, 10)
        latencies = []
        for n, reader in enumerate(readers):
            started = time.monotonic()
            status, body, _ = other.json("PUT", path, {"choice": "yes"}, reader)
            assert status == 200, body
            status, body, _ = other.json("GET", f"/api/v1/widget?article={ARTICLES[2]}")
            assert status == 200
            status, body, _ = other.json("GET", f"/api/v1/widget/mine?article={ARTICLES[2]}",
                                         headers=reader)
            assert status == 200 and body["articles"][ARTICLES[2]]["total"] == n + 1
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 1, latencies
        # nginx, not engage, ends the held ones when their body deadline passes: it
        # closes them (a 408 in its log; nothing is sent to a client that stopped).
        timed_out = answered(held, body_timeout + 10)
        assert list(timed_out.values()) == [0] * cap, timed_out.values()
        assert stack.front.log.read_text().count(f"PUT {path} 408") == cap
        votes = stack.engage.count(lambda a: a.path == path)
        assert votes == len(readers)
    finally:
        for sock in socks:
            sock.close()


# -- the issue's acceptance, through nginx, against `engage serve` ----------------------------
class Readers:
    """Readers at another address than the attacker's, one after another on one
    kept-alive connection: each loads the widget's counts, votes, and reads its own vote.
    Every request's latency and every failure are kept."""

    def __init__(self, port: int, secret: str) -> None:
        self.client = Client(port, OTHER_ADDRESS, timeout=5)
        self.identity = Identity(secret, [])

    def run(self, seconds: float) -> tuple[list[float], list[str]]:
        latencies: list[float] = []
        failures: list[str] = []
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            article = ARTICLES[n % len(ARTICLES)]
            reader = {"X-Engage-Reader": self.identity.mint_reader()}
            for method, path, body, headers in (
                ("GET", f"/api/v1/widget?article={article}", None, None),
                ("PUT", f"/api/v1/articles/{article}/reactions/mine", {"choice": "yes"},
                 reader),
                ("GET", f"/api/v1/widget/mine?article={article}", None, reader),
            ):
                started = time.monotonic()
                try:
                    status = self.client.request(method, path, body, headers)[0]
                    if status != 200:
                        failures.append(f"{method} {path}: {status}")
                except OSError as exc:
                    self.client.close()
                    failures.append(f"{method} {path}: {exc!r}")
                latencies.append(time.monotonic() - started)
            n += 1
        self.client.close()
        return latencies, failures


@pytest.fixture
def served_front(tmp_path: Path) -> Iterator[tuple[Served, Front]]:
    """`engage serve` with its default workers, the shipped nginx in front, and the five
    articles registered through it."""
    redis = RedisServer(tmp_path / "redis").start()
    served = Served(redis.url, tmp_path, TRUSTED_PROXIES=f"{NGINX_ADDRESS}/32")
    front = Front(served.port, tmp_path / "nginx.log")
    try:
        app = make_app(redis.url, tmp_path)
        with app.app_context():
            editor, _ = tokens.create(get_store(), "editor", "front door")
        register_articles(front, {"Authorization": f"Bearer {editor}"})
        yield served, front
    finally:
        front.stop()
        served.stop()
        redis.stop()


@pytest.mark.slow
def test_an_attack_from_one_address_leaves_other_readers_served(
        served_front: tuple[Served, Front]) -> None:
    """1,000 stalled bodies and 1,000 idle connections from one address, opened and held
    while other readers read and vote through nginx in front of `engage serve`: their
    p99 stays under 250 ms, nginx holds as many stalled bodies as its per-address cap
    and refuses the rest at once, and after the attacker leaves all is as before."""
    served, front = served_front
    readers = Readers(front.port, SERVER_SECRET)
    cap = int(conf_value("limit_conn per_address"))
    baseline, failed = readers.run(3)
    assert not failed, failed[:5]
    measured: list[tuple[list[float], list[str]]] = []
    other = threading.Thread(target=lambda: measured.append(readers.run(8)))
    other.start()
    attack: list[socket.socket] = []
    try:
        time.sleep(1)  # the readers are under way when the attack starts
        opening = time.monotonic()
        for _ in range(1000):
            attack.append(stalled_body(front.port, READER_ADDRESS,
                                       f"/api/v1/articles/{ARTICLES[0]}/reactions/mine"))
        for _ in range(1000):
            attack.append(socket.create_connection(("127.0.0.1", front.port), timeout=10,
                                                   source_address=(READER_ADDRESS, 0)))
        opened = time.monotonic() - opening
        other.join(30)
        stalled = list(answered(attack[:1000], 0.5).values())
        idle = list(answered(attack[1000:], 0.5).values())
    finally:
        for sock in attack:
            sock.close()
        other.join(30)
    (under_attack, failed), = measured
    after, failed_after = readers.run(2)
    print(f"\nother readers' p99: {p99(baseline) * 1000:.1f} ms before "
          f"({len(baseline)} requests), {p99(under_attack) * 1000:.1f} ms during "
          f"(max {max(under_attack) * 1000:.1f} ms, {len(under_attack)} requests, "
          f"{len(failed)} failed), {p99(after) * 1000:.1f} ms after "
          f"({len(after)} requests, {len(failed_after)} failed); attack opened in "
          f"{opened:.1f} s; stalled bodies: {stalled.count(429)} refused with 429, "
          f"{1000 - len(stalled)} held, {stalled.count(0)} closed; idle connections: "
          f"{1000 - len(idle)} held, {len(idle)} closed")
    assert not failed, failed[:5]
    assert p99(under_attack) < 0.25
    assert 1000 - len(stalled) == cap and stalled == [429] * (1000 - cap)
    assert set(idle) <= {0}  # never answered; nginx drops them after 10 s of silence
    assert not failed_after and p99(after) < 0.25
    assert served.healthy()
