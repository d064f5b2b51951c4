"""Fault and fuzz tests: a real app served over real sockets against real redis-servers.

Helpers shared by these tests live here: a threaded HTTP server for an app, reader
tokens minted without going through the rate-limited endpoint, and timing helpers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

import engage
from engage.identity import get_identity
from engage.store import get_store, tokens
from tests.conftest import ARTICLE


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` on a free loopback port with one thread per request; yields the base URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def mint_readers(app: Flask, n: int) -> list[str]:
    with app.app_context():
        identity = get_identity()
        return [identity.mint_reader() for _ in range(n)]


def reader_hash(app: Flask, token: str) -> str:
    with app.app_context():
        return get_identity().reader_from_token(token)


def editor_headers(app: Flask) -> dict[str, str]:
    with app.app_context():
        return {"Authorization": "Bearer " + tokens.create(get_store(), "editor", "faults")[0]}


def register_article(app: Flask, article_id: str, **changes: Any) -> None:
    body = dict(ARTICLE, **changes)
    response = app.test_client().put(
        f"/api/v1/articles/{article_id}", json=body, headers=editor_headers(app)
    )
    assert response.status_code in (200, 201), response.json


@dataclass
class Outcome:
    started: float
    elapsed: float
    status: int  # 0 = no HTTP answer at all (connection error or client timeout)
    retry_after: str | None = None
    body: Any = None


@dataclass
class Recorder:
    """Thread-safe log of every request a load thread made."""

    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, session: requests.Session, method: str, url: str, **kwargs: Any) -> Outcome:
        started = time.monotonic()
        try:
            response = session.request(method, url, timeout=kwargs.pop("timeout", 10), **kwargs)
        except requests.RequestException:
            outcome = Outcome(started, time.monotonic() - started, 0)
        else:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            outcome = Outcome(
                started, time.monotonic() - started, response.status_code,
                response.headers.get("Retry-After"), body,
            )
        with self.lock:
            self.outcomes.append(outcome)
        return outcome

    def between(self, start: float, end: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if start <= o.started < end]


def wait_for(predicate: Any, timeout: float, interval: float = 0.02) -> float:
    """Seconds until `predicate()` held; AssertionError when it did not within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# The checkout the tests import engage from, so the subprocess runs the same code.
REPO = Path(engage.__file__).resolve().parent.parent
SECRET = "fault-tests-secret-key-0123456789"


class Load:
    """Background threads mixing the hot requests: reads, batch reads and new votes."""

    def __init__(self, base: str, article_id: str, readers: list[str], threads: int = 4) -> None:
        self.base = base
        self.article_id = article_id
        self.readers = iter(readers)
        self.reader_lock = threading.Lock()
        self.recorder = Recorder()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n: int) -> None:
        session = requests.Session()
        api = f"{self.base}/api/v1"
        while not self.stop_event.is_set():
            kind = n % 3
            if kind == 0:
                self.recorder.call(session, "GET", f"{api}/articles/{self.article_id}/reactions")
            elif kind == 1:
                self.recorder.call(session, "GET", f"{api}/reactions",
                                   params={"article": [self.article_id, "other"]})
            else:
                with self.reader_lock:
                    token = next(self.readers)
                self.recorder.call(
                    session, "PUT", f"{api}/articles/{self.article_id}/reactions/mine",
                    json={"choice": "yes"}, headers={"X-Engage-Reader": token},
                )

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(15)


def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes to a local server and read until it closes the connection (or
    resets it: a server refusing a request may close while the client still sends)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)
