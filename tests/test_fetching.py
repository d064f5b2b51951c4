"""engage/fetching.py against a publisher on loopback: the destination checks at every
hop, the origins, the size and time limits, conditional GETs and the User-Agent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from engage import __version__, fetching
from engage.config import load_config
from tests.conftest import suite_dns
from tests.dns_server import DnsServer
from tests.publisher import Publisher

pytestmark = pytest.mark.usefixtures("loopback_only")


def settings(**overrides: Any) -> dict[str, Any]:
    return load_config({}, {"FETCH_PRIVATE_NETWORKS": ["127.0.0.0/8"],
                            "FETCH_MAX_BYTES": 1024 * 1024, "FETCH_TIMEOUT": 2.0,
                            "FETCH_HOST_INTERVAL": 0.0,
                            "WEBHOOK_DNS": [suite_dns().address], **overrides})


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    site = Publisher().start()
    yield site
    site.stop()


def test_fetches_a_page_with_its_validators_and_names_itself(publisher: Publisher) -> None:
    publisher.pages["/a"] = "<html><title>A</title></html>"
    got = fetching.fetch(publisher.url("/a"), settings(), origins=[publisher.origin])
    assert got == fetching.Fetched(publisher.url("/a"), 200, b"<html><title>A</title></html>",
                                   '"v1"', None)
    agent = publisher.requests[-1][1]["User-Agent"]
    assert agent == f"engage-fetch/{__version__} (article verification)"
    fetching.fetch(publisher.url("/a"), settings(PUBLIC_URL="https://engage.example"),
                   origins=[publisher.origin])
    assert publisher.requests[-1][1]["User-Agent"] == (
        f"engage-fetch/{__version__} (article verification; +https://engage.example)")


def test_a_conditional_get_answers_304_without_a_body(publisher: Publisher) -> None:
    publisher.pages["/a"] = "<html></html>"
    got = fetching.fetch(publisher.url("/a"), settings(), origins=[publisher.origin], etag='"v1"')
    assert (got.status, got.body, got.etag) == (304, b"", '"v1"')
    assert publisher.requests[-1][1]["If-None-Match"] == '"v1"'


def test_follows_a_redirect_within_the_origins(publisher: Publisher) -> None:
    publisher.pages["/b"] = "<p>b</p>"
    got = fetching.fetch(publisher.url("/redirect?to=/b"), settings(), origins=[publisher.origin])
    assert (got.url, got.body) == (publisher.url("/b"), b"<p>b</p>")


@pytest.mark.parametrize(("path", "origins", "reason"), [
    ("/a", ["https://elsewhere.example"], "origin"),
    ("/redirect?to=http://127.0.0.2:9/x", None, "origin"),
    ("/missing", None, "status"),
    ("/huge?mb=20", None, "size"),
    ("/slow?s=30", None, "timeout"),
])
def test_refusals_carry_a_reason(publisher: Publisher, path: str, origins: list[str] | None,
                                 reason: str) -> None:
    publisher.pages["/a"] = publisher.pages["/slow"] = "<p>a</p>"
    started = time.monotonic()
    with pytest.raises(fetching.FetchRefused) as refused:
        fetching.fetch(publisher.url(path), settings(), origins=origins or [publisher.origin])
    assert refused.value.reason == reason
    assert refused.value.reason in fetching.REASONS
    assert time.monotonic() - started < 8  # the limits end it, not the 30 s server


def test_loopback_and_private_are_refused_unless_allowed(publisher: Publisher) -> None:
    publisher.pages["/a"] = "<p>a</p>"
    with pytest.raises(fetching.FetchRefused) as refused:
        fetching.fetch(publisher.url("/a"), settings(FETCH_PRIVATE_NETWORKS=[]),
                       origins=[publisher.origin])
    assert refused.value.reason == "private"
    assert publisher.requests == []
    # WEBHOOK_ALLOW_PRIVATE is the webhooks' choice, not the fetcher's.
    with pytest.raises(fetching.FetchRefused):
        fetching.fetch(publisher.url("/a"),
                       settings(FETCH_PRIVATE_NETWORKS=[], WEBHOOK_ALLOW_PRIVATE=True),
                       origins=[publisher.origin])
    assert publisher.requests == []


@pytest.mark.parametrize("address", ["10.0.0.7", "169.254.169.254", "192.168.1.1", "fd00::1"])
def test_a_redirect_to_a_private_address_is_refused(
        publisher: Publisher, name_server: DnsServer, address: str) -> None:
    # Loopback allowed (the publisher), the rest of the private space not: the redirect
    # stays on the site's origins, through a name that resolves to a private address.
    name_server.set("intranet.engage.test", address)
    inside = f"http://intranet.engage.test:{publisher.port}"
    with pytest.raises(fetching.FetchRefused) as refused:
        fetching.fetch(publisher.url(f"/redirect?to={inside}/a"), settings(),
                       origins=[publisher.origin, inside])
    assert refused.value.reason == "private"
    assert [path for path, _ in publisher.requests] == [f"/redirect?to={inside}/a"]


def test_one_host_is_asked_at_a_polite_pace(publisher: Publisher) -> None:
    publisher.pages["/a"] = "<p>a</p>"
    config = settings(FETCH_HOST_INTERVAL=0.3)
    started = time.monotonic()
    for _ in range(3):
        fetching.fetch(publisher.url("/a"), config, origins=[publisher.origin])
    assert time.monotonic() - started >= 0.55


def test_origin_matching_ignores_default_ports_and_case() -> None:
    assert fetching.on_origins("HTTPS://Paper.Example:443/x", ["https://paper.example"])
    assert not fetching.on_origins("http://paper.example/x", ["https://paper.example"])
    assert not fetching.on_origins("https://paper.example.evil/x", ["https://paper.example"])
    assert not fetching.on_origins("", ["https://paper.example"])


def test_a_compressed_body_not_asked_for_is_refused(publisher: Publisher) -> None:
    """10 MB of page in 10 kB of gzip: refused before anything is inflated."""
    with pytest.raises(fetching.FetchRefused) as refused:
        fetching.fetch(publisher.url("/gzip"), settings(), origins=[publisher.origin])
    assert refused.value.reason == "encoding"
    assert publisher.requests[-1][1]["Accept-Encoding"] == "identity"
