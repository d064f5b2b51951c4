"""A publisher's site on loopback for tests of page verification: pages set by the test,
redirects, a page that never ends (streams as much as asked for) and one that sleeps
before it answers. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def article_page(article_id: str | None, title: str, *, section: str | None = None,
                 published: str | None = None, tags: tuple[str, ...] = (),
                 canonical: str | None = None, widget_src: str | None = None,
                 api: str | None = None) -> str:
    """An article page with Open Graph tags and, when `article_id` is given, the widget's
    element carrying it."""
    meta = [f'<meta property="og:title" content="{title}">']
    if section:
        meta.append(f'<meta property="article:section" content="{section}">')
    if published:
        meta.append(f'<meta property="article:published_time" content="{published}">')
    meta += [f'<meta property="article:tag" content="{tag}">' for tag in tags]
    if canonical:
        meta.append(f'<link rel="canonical" href="{canonical}">')
    holder = f'<div data-engage-article="{article_id}"></div>' if article_id else ""
    script = ""
    if widget_src:
        script = f'<script src="{widget_src}" data-engage-api="{api}" defer></script>'
    return (f"<!doctype html><html><head><title>{title} | Paper</title>{''.join(meta)}"
            f"</head><body><h1>{title}</h1>{holder}{script}</body></html>")


class Publisher:
    """`pages`: path -> HTML. `/redirect?to=<url>` redirects; `/huge?mb=<n>` streams n MB
    of HTML; `/slow?s=<n>` sleeps n seconds (less when the server stops) before a page."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()
        publisher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                publisher.requests.append((self.path, dict(self.headers.items())))
                try:
                    publisher.answer(self, parts.path, query)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the fetcher gave up, as it should

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.origin + path

    def answer(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        if path == "/redirect":
            handler.send_response(302)
            handler.send_header("Location", query["to"])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if path == "/huge":
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.end_headers()  # no length: the fetcher learns the size as it reads
            chunk = b"<p>" + b"x" * 65_533 + b"\n"
            for _ in range(int(query.get("mb", "20")) * 16):
                handler.wfile.write(chunk)
            return
        if path == "/gzip":  # compressed though the fetcher asks for identity
            data = gzip.compress(b"<p>" + b"x" * 10_000_000 + b"</p>")
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Encoding", "gzip")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        if path == "/slow":
            self.stopping.wait(float(query.get("s", "30")))
        body = self.pages.get(path)
        if body is None:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if handler.headers.get("If-None-Match") == '"v1"':
            handler.send_response(304)
            handler.send_header("ETag", '"v1"')
            handler.end_headers()
            return
        data = body.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("ETag", '"v1"')
        handler.end_headers()
        handler.wfile.write(data)

    def start(self) -> Publisher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def wait_for(check: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
