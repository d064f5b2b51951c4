"""BufferedWSGI, the ASGI app `engage serve` runs under granian, driven in-process.

Each test plays the server's part: an ASGI scope, the request's body messages (or none
at all, for a client that stalls), and a record of what the app sends. The app behind
it is a small Flask app, so what the WSGI side sees is checked directly; tests/
test_server.py covers the real server with engage's app.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask, Response, g, request, stream_with_context

from engage.server import RESPONSE_BATCH, BufferedWSGI

LIMIT = 1024


def scope(method: str = "GET", raw_path: bytes = b"/echo", query: bytes = b"",
          headers: Iterable[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "root_path": "",
        "path": raw_path.decode("utf-8", "replace"), "raw_path": raw_path,
        "query_string": query, "headers": list(headers),
        "client": ("203.0.113.9", "40000"), "server": ("127.0.0.1", "8000"),
    }


class Exchange:
    """One request through the app: the body messages to give, what was sent back."""

    def __init__(self, messages: Iterable[dict[str, Any]] = (), fail_after: int = 0) -> None:
        self.messages = list(messages)
        self.received = 0
        self.sent: list[dict[str, Any]] = []
        self.fail_after = fail_after  # a client that leaves after this many messages

    async def receive(self) -> dict[str, Any]:
        if self.received < len(self.messages):
            self.received += 1
            return self.messages[self.received - 1]
        await asyncio.Event().wait()  # the client sends nothing more
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail_after and len(self.sent) >= self.fail_after:
            raise ConnectionResetError("the client left")
        self.sent.append(message)

    def run(self, app: BufferedWSGI, request_scope: dict[str, Any]) -> Exchange:
        asyncio.run(app(request_scope, self.receive, self.send))
        return self

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def body_messages(*chunks: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
            for n, chunk in enumerate(chunks)]


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def flask_app(events: list[str]) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = LIMIT

    @app.route("/echo", methods=["GET", "PUT"])
    @app.route("/echo/<path:rest>", methods=["GET", "PUT"])
    def echo(rest: str = "") -> Any:
        environ = request.environ
        keys = ("PATH_INFO", "QUERY_STRING", "REMOTE_ADDR", "SERVER_PORT", "CONTENT_TYPE",
                "HTTP_COOKIE", "HTTP_X_FORWARDED_FOR", "HTTP_ACCEPT", "wsgi.url_scheme")
        return {"body": request.get_data(as_text=True), "thread": threading.get_ident(),
                "main": threading.current_thread() is threading.main_thread(),
                **{key: environ.get(key) for key in keys}}

    @app.route("/stream")
    def stream() -> Response:
        g.label = request.args["label"]

        def rows() -> Iterator[str]:
            try:
                for n in range(40):
                    # The request context is there, whichever thread asks for the next.
                    yield f"{g.label}{n:02d}" + "." * 4093 + "\n"
            finally:
                # Closed on a pool thread by the adapter, not collected by the loop's.
                main = threading.current_thread() is threading.main_thread()
                events.append("collected" if main else "closed")

        return Response(stream_with_context(rows()), mimetype="text/plain")

    @app.teardown_request
    def teardown(_: BaseException | None) -> None:
        events.append("teardown")

    return app


@pytest.fixture
def buffered(flask_app: Flask) -> BufferedWSGI:
    return BufferedWSGI(flask_app, timeout=0.3, max_length=LIMIT, threads=4)


def test_the_environ_is_the_one_granians_wsgi_gave(buffered: BufferedWSGI) -> None:
    exchange = Exchange().run(buffered, scope(
        raw_path=b"/echo/caf%C3%A9/%FF%20x", query=b"a=1&b=%20",
        headers=[(b"accept", b"text/html"), (b"accept", b"application/json"),
                 (b"cookie", b"a=1"), (b"cookie", b"b=2"),
                 (b"x-forwarded-for", b"198.51.100.1"),
                 # Would pass for X-Forwarded-For once both are HTTP_ keys.
                 (b"x_forwarded_for", b"192.0.2.66")]))
    assert exchange.status == 200
    seen = json.loads(exchange.body)
    # The path's bytes as sent, %-decoded, one byte per character (PEP 3333).
    assert seen["PATH_INFO"] == "/echo/caf\xc3\xa9/\xff x"
    assert seen["QUERY_STRING"] == "a=1&b=%20"
    assert seen["HTTP_ACCEPT"] == "text/html,application/json"
    assert seen["HTTP_COOKIE"] == "a=1; b=2"
    assert seen["HTTP_X_FORWARDED_FOR"] == "198.51.100.1"
    assert seen["REMOTE_ADDR"] == "203.0.113.9" and seen["SERVER_PORT"] == "8000"
    assert seen["wsgi.url_scheme"] == "http"
    assert seen["body"] == "" and not seen["main"]  # on a pool thread, not the loop's


def test_a_body_is_read_whole_before_the_app_runs(buffered: BufferedWSGI) -> None:
    chunks = (b'{"a": ', b'"b"', b"}")
    exchange = Exchange(body_messages(*chunks)).run(buffered, scope("PUT", headers=[
        (b"content-type", b"application/json"), (b"content-length", b"11")]))
    assert exchange.status == 200
    assert json.loads(exchange.body)["body"] == '{"a": "b"}'


def test_the_declared_length_ends_the_read(buffered: BufferedWSGI) -> None:
    """granian may say `more_body` with the last bytes; the message after them is not
    waited for (this receive would wait forever)."""
    messages = [{"type": "http.request", "body": b"abc", "more_body": True}]
    exchange = Exchange(messages).run(buffered, scope("PUT", headers=[
        (b"content-length", b"3")]))
    assert json.loads(exchange.body)["body"] == "abc"


def test_a_stalled_body_gets_408_without_a_thread(
    buffered: BufferedWSGI, events: list[str],
) -> None:
    exchange = Exchange([{"type": "http.request", "body": b"{", "more_body": True}])
    exchange.run(buffered, scope("PUT", headers=[(b"content-length", b"1000")]))
    assert exchange.status == 408
    assert exchange.headers[b"connection"] == b"close"
    assert exchange.headers[b"content-type"] == b"application/json"
    error = json.loads(exchange.body)["error"]
    assert error["code"] == "request_timeout" and "0.3 s" in error["message"]
    assert events == []  # the app never ran


def test_a_client_gone_before_its_body_is_not_answered(
    buffered: BufferedWSGI, events: list[str],
) -> None:
    exchange = Exchange([{"type": "http.request", "body": b"{", "more_body": True},
                         {"type": "http.disconnect"}])
    exchange.run(buffered, scope("PUT", headers=[(b"content-length", b"10")]))
    assert exchange.sent == [] and events == []


def test_bodies_over_the_limit_are_refused_by_flask(buffered: BufferedWSGI) -> None:
    # Declared too long: passed on unread (this receive would stall), Flask says 413.
    declared = Exchange().run(buffered, scope("PUT", headers=[
        (b"content-length", str(LIMIT + 1).encode())]))
    assert declared.status == 413
    # Chunked: read until it passes the limit, and not further.
    chunk = b"x" * 600
    chunked = Exchange([{"type": "http.request", "body": chunk, "more_body": True}] * 5)
    chunked.run(buffered, scope("PUT", headers=[(b"transfer-encoding", b"chunked")]))
    assert chunked.status == 413
    assert chunked.received == 2
    # Chunked within the limit: read whole.
    small = Exchange(body_messages(b"ab", b"cd")).run(buffered, scope("PUT", headers=[
        (b"transfer-encoding", b"chunked")]))
    assert small.status == 200 and json.loads(small.body)["body"] == "abcd"


def test_a_streamed_answer_goes_out_in_batches_and_is_closed(
    buffered: BufferedWSGI, events: list[str],
) -> None:
    exchange = Exchange().run(buffered, scope(raw_path=b"/stream", query=b"label=r"))
    assert exchange.status == 200
    lines = exchange.body.decode().splitlines()
    assert [line[:3] for line in lines] == [f"r{n:02d}" for n in range(40)]
    bodies = exchange.sent[1:]
    assert len(bodies) > 2  # 160 KB in pieces of about RESPONSE_BATCH, never whole
    assert all(len(m["body"]) <= RESPONSE_BATCH + 4096 for m in bodies)
    assert [m.get("more_body", False) for m in bodies] == [True] * (len(bodies) - 1) + [False]
    # The generator ran to its end, and its context was torn down after it.
    assert events[-2:] == ["closed", "teardown"]


def test_a_client_that_leaves_mid_answer_closes_the_stream(
    buffered: BufferedWSGI, events: list[str],
) -> None:
    exchange = Exchange(fail_after=2)
    with pytest.raises(ConnectionResetError):
        exchange.run(buffered, scope(raw_path=b"/stream", query=b"label=r"))
    assert len(exchange.sent) == 2
    assert events[-2:] == ["closed", "teardown"]


def test_other_scopes_are_ignored(buffered: BufferedWSGI) -> None:
    exchange = Exchange().run(buffered, {"type": "lifespan"})
    assert exchange.sent == []
