"""A WSGI app behind werkzeug's threaded server on a free loopback port, and clients for it.

For the tests that need real HTTP (concurrency, browsers) rather than Flask's test client.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from engage.identity import get_identity


class QuietKeepAliveHandler(WSGIRequestHandler):
    # HTTP/1.1 keeps one connection per client thread instead of one per request;
    # a log line per request would drown the output of the concurrency tests.
    protocol_version = "HTTP/1.1"

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextmanager
def serving(wsgi_app: Any, keep_alive: bool = False) -> Iterator[BaseWSGIServer]:
    """Serve `wsgi_app` in a background thread until the block ends."""
    handler = QuietKeepAliveHandler if keep_alive else None
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True, request_handler=handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


class KeepAliveClient:
    """JSON over one kept-alive connection per calling thread."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.port = port
        self.timeout = timeout
        self.local = threading.local()

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.local.conn = conn
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)


def call_json(url: str, method: str, body: Any = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request on a fresh connection: (status, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def mint_readers(app: Flask, n: int) -> list[dict[str, str]]:
    """Signed reader tokens minted in-process (the HTTP mint is rate limited per address)."""
    with app.app_context():
        identity = get_identity()
        return [{"X-Engage-Reader": identity.mint_reader()} for _ in range(n)]
