"""One safe fetcher for publishers' pages and feeds (the worker's, never a request's).

Every URL engage fetches on a publisher's behalf passes the destination checks webhooks
use (engage/destinations.py), at every hop: a redirect is followed by hand, its target
checked again, and the connection goes to the checked address, so a name that changes
its answer in between gains nothing. A hop off the allowed origins, a body over
FETCH_MAX_BYTES, a fetch past FETCH_TIMEOUT (all hops and the body together) or an
answer other than 200/304 is refused with a short reason code (`FetchRefused.reason`,
the bounded label of the metrics and the dashboard's "unverified pages").

FETCH_PRIVATE_NETWORKS, not WEBHOOK_ALLOW_PRIVATE, lets fetches reach loopback or private
addresses, and only the networks it lists: the URLs come from readers' pages (within the
site's origins), a different trust than an admin's webhook, and a publisher on an
internal network should not open the rest of it. Names are looked up as for webhooks
(WEBHOOK_DNS).

Requests to one host are spaced by at least FETCH_HOST_INTERVAL seconds in this process
(robots-friendly: a flood of new articles is fetched at the publisher's pace, not ours).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import threading
import time
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3

from engage import __version__, destinations

USER_AGENT = f"engage-fetch/{__version__} (article verification)"
HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
MAX_REDIRECTS = 5
CHUNK = 16 * 1024

# The reason codes FetchRefused carries: a fixed set, so metrics labels stay bounded.
REASONS = ("origin", "private", "redirect", "size", "timeout", "status", "unreachable",
           "url", "encoding")


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    status: int  # 200, or 304 when the validators given still hold
    body: bytes  # b"" on 304
    etag: str | None
    last_modified: str | None


class FetchRefused(Exception):
    """Nothing usable came back; `reason` is one of REASONS, the message says more."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    timeout: float
    host_interval: float
    rules: destinations.Rules  # public addresses only
    private: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]  # and these


def limits(config: Mapping[str, Any]) -> Limits:
    rules = dataclasses.replace(destinations.rules(config), allow_private=False)
    private = tuple(ipaddress.ip_network(n) for n in config["FETCH_PRIVATE_NETWORKS"])
    return Limits(int(config["FETCH_MAX_BYTES"]), float(config["FETCH_TIMEOUT"]),
                  float(config["FETCH_HOST_INTERVAL"]), rules, private)


def _checked(url: str, settings: Limits) -> tuple[str, int]:
    """The address to connect to for `url`: a public one, or one in the allowed private
    networks. Raises RefusedDestination or OSError as destinations.resolve does."""
    try:
        return destinations.resolve(url, settings.rules)
    except destinations.RefusedDestination:
        if not settings.private:
            raise
    # The address connected to is the one judged, so a name with several answers
    # cannot slip a second one past the check.
    address, port = destinations.resolve(
        url, dataclasses.replace(settings.rules, allow_private=True))
    ip = ipaddress.ip_address(address)
    if destinations.is_forbidden(ip) and not any(ip in net for net in settings.private):
        raise destinations.RefusedDestination(f"{address} is not an allowed address.")
    return address, port


def user_agent(config: Mapping[str, Any]) -> str:
    """engage and its version, and where it runs when PUBLIC_URL says: a publisher who
    sees it in a log knows whom to ask."""
    public = config.get("PUBLIC_URL")
    return f"{USER_AGENT[:-1]}; +{public})" if public else USER_AGENT


def origin_of(url: str) -> str:
    """`scheme://host[:port]` as a site's `origins` list it (default ports left out)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return ""
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def on_origins(url: str, origins: Collection[str]) -> bool:
    allowed = {origin_of(o) for o in origins}
    return bool(url) and origin_of(url) in allowed


class _Pacer:
    """The next moment each host may be asked again, in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_at: dict[str, float] = {}

    def wait(self, host: str, interval: float, deadline: float) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_at.get(host, 0.0))
            if start > deadline:
                raise FetchRefused("timeout", f"{host} was asked too recently to wait.")
            self.next_at[host] = start + interval
            if len(self.next_at) > 10_000:  # forget hosts whose turn has long passed
                self.next_at = {h: t for h, t in self.next_at.items() if t > now}
        time.sleep(max(0.0, start - time.monotonic()))


_PACER = _Pacer()


def fetch(url: str, config: Mapping[str, Any], *, origins: Collection[str],
          etag: str | None = None, last_modified: str | None = None,
          accept: str = HTML_ACCEPT) -> Fetched:
    """GET `url`, following redirects within `origins`; raises FetchRefused."""
    settings = limits(config)
    deadline = time.monotonic() + settings.timeout
    for _ in range(MAX_REDIRECTS + 1):
        if not url.lower().startswith(("http://", "https://")):
            raise FetchRefused("url", "Only http and https URLs are fetched.")
        if not on_origins(url, origins):
            raise FetchRefused("origin",
                               f"{origin_of(url) or url} is not one of the site's origins.")
        headers = {"User-Agent": user_agent(config), "Accept": accept,
                   "Accept-Encoding": "identity"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        pool, response = _get(url, headers, settings, deadline)
        # Closed either way: a refused or abandoned body must not keep the socket open.
        with pool, contextlib.closing(response):
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise FetchRefused("redirect", f"HTTP {response.status} without a Location.")
                url = urllib.parse.urljoin(url, location)
                continue
            if response.status == 304 and (etag or last_modified):
                return Fetched(url, 304, b"", response.headers.get("ETag") or etag,
                               response.headers.get("Last-Modified") or last_modified)
            if response.status != 200:
                raise FetchRefused("status", f"HTTP {response.status}.")
            # Asked for identity: a compressed body would be inflated before the size
            # limit could see it (a few kilobytes can inflate to gigabytes).
            encoding = response.headers.get("Content-Encoding", "").strip().lower()
            if encoding not in ("", "identity"):
                raise FetchRefused("encoding", f"The server sent a {encoding} body, "
                                               "which was not asked for.")
            body = _read(response, settings, deadline)
            return Fetched(url, 200, body, response.headers.get("ETag"),
                           response.headers.get("Last-Modified"))

    raise FetchRefused("redirect", f"More than {MAX_REDIRECTS} redirects.")


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchRefused("timeout", "The fetch took longer than allowed.")
    return left


def _get(url: str, headers: dict[str, str], settings: Limits,
         deadline: float) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    try:
        address, port = _checked(url, settings)
    except destinations.RefusedDestination:
        host = urllib.parse.urlsplit(url).hostname or url
        raise FetchRefused("private", f"{host} is not a public internet address.") from None
    except (OSError, UnicodeError) as exc:
        raise FetchRefused("unreachable",
                           f"The host did not resolve ({type(exc).__name__}).") from None
    parts = urllib.parse.urlsplit(url)
    _PACER.wait(address, settings.host_interval, deadline)
    left = _left(deadline)
    timeout = urllib3.Timeout(connect=left, read=left)
    # Connect to the checked address; TLS still verifies the URL's own host name.
    pool: urllib3.HTTPConnectionPool = (
        urllib3.HTTPSConnectionPool(address, port, server_hostname=parts.hostname,
                                    timeout=timeout, retries=False, maxsize=1)
        if parts.scheme.lower() == "https"
        else urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False,
                                        maxsize=1)
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen("GET", target,
                                headers={**headers, "Host": parts.netloc.rpartition("@")[2]},
                                redirect=False, preload_content=False)
        return pool, response
    except urllib3.exceptions.TimeoutError:
        pool.close()
        raise FetchRefused("timeout", "The server did not answer in time.") from None
    except urllib3.exceptions.HTTPError as exc:
        pool.close()
        name = type(getattr(exc, "reason", None) or exc).__name__
        if "Timeout" in name:
            raise FetchRefused("timeout", "The server did not answer in time.") from None
        raise FetchRefused("unreachable", f"The server could not be reached ({name}).") from None


def _read(response: urllib3.BaseHTTPResponse, settings: Limits, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > settings.max_bytes:
        raise FetchRefused("size", f"The page is larger than {settings.max_bytes} bytes.")
    body = bytearray()
    try:
        while True:
            _left(deadline)
            # read1: whatever has arrived, so a server that trickles bytes still meets
            # the deadline check between two reads.
            chunk = response.read1(CHUNK)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > settings.max_bytes:
                raise FetchRefused("size", f"The page is larger than {settings.max_bytes} bytes.")
    except urllib3.exceptions.TimeoutError:
        raise FetchRefused("timeout", "The server sent the page too slowly.") from None
    except urllib3.exceptions.HTTPError as exc:
        raise FetchRefused("unreachable", f"The page broke off ({type(exc).__name__}).") from None
