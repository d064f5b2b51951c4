"""A webhook endpoint on loopback for tests: records every delivery, fails some on purpose."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """`fail(n)` decides, for the n-th request (from 0), whether to answer 500.

    A request is recorded as soon as its body is in, then answered after `delay`
    seconds, so a test can see a sender that is waiting for an answer.
    """

    def __init__(self, fail: Callable[[int], bool] = lambda n: False, delay: float = 0.0) -> None:
        self.fail = fail
        self.delay = delay
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # every whole request, failed ones too
        self.truncated = 0  # sender died mid-body: never a delivery
        self.delivered: list[dict[str, Any]] = []  # answered 2xx
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    with receiver.lock:
                        receiver.truncated += 1
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver.lock:
                    number = len(receiver.requests)
                    failed = receiver.fail(number)
                    record = {"headers": dict(self.headers), "body": body, "failed": failed}
                    receiver.requests.append(record)
                    if not failed:
                        receiver.delivered.append(record)
                time.sleep(receiver.delay)
                self.send_response(500 if failed else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # socketserver's default backlog of 5 drops parallel connects (1 s SYN retry).
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered_bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.delivered]


def fail_fraction(fraction: float, seed: int = 7) -> Callable[[int], bool]:
    rng = random.Random(seed)
    return lambda _n: rng.random() < fraction


def signature_ok(secret: str, record: dict[str, Any]) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), record["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, record["headers"].get("X-Engage-Signature", ""))
