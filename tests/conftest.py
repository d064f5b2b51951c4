"""Fixtures: a real redis-server per session (flushed per test), the app, clients, tokens,
a clock the test moves by hand, and the DNS server every app looks webhook names up at."""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage import create_app
from engage.logs import RequestFormatter
from engage.logs import logger as request_log
from engage.store import get_store, tokens
from tests import processes
from tests.desk import Desk
from tests.dns_server import PUBLIC_NAMES, DnsServer
from tests.redis_server import RedisServer, stop_embedded

CLUSTER_RUN = os.environ.get("ENGAGE_TEST_REDIS") == "cluster"

# `ENGAGE_TEST_REDIS=cluster` runs the suite against a local Redis Cluster (a step of
# .ci/run): every app then talks to tests/cluster.py's cluster through `redis+cluster://`.
# New test files join that run on their own; only these stay out, each for its reason.
SINGLE_REDIS_ONLY = {
    "browser": "a real browser against one Redis; run once",
    "faults": "kills and pauses a single Redis",
    "test_quality.py": "ruff, mypy and the declared dependencies; no Redis",
    "test_privacy.py": "reads one server's raw memory by its port",
    "test_deploy.py": "runs the deployment stack with its own single Redis",
    "test_server.py": "`engage serve` processes against their own single Redis",
    "test_supervised_redis.py": "kills the embedded Redis of its own `engage serve`",
    "test_outage.py": "stops and pauses its own single Redis",
    "test_cluster.py": "starts its own clusters",
    "test_slots.py": "pure key arithmetic; no Redis",
    # Not the API suite: the command line, packaging, tooling and HTML forms over the
    # same store functions the API suite covers, and rules with no Redis at all.
    "test_cli.py": "the command line and the embedded Redis",
    "test_embedded_data.py": "the embedded server's own data directories",
    "test_wheel.py": "builds and installs the package",
    "test_image.py": "the image's wheels, from the package index",
    "test_generated_client.py": "a generated client; the API suite covers the calls",
    "test_editor.py": "dashboard forms over the store functions the API suite covers",
    "test_form_fuzz.py": "thousands of dashboard form posts; the forms' store is the API's",
    "test_formulas.py": "pure rules; no Redis",
    "test_timerange.py": "pure rules; no Redis",
    "test_readme.py": "documentation; no Redis",
    "test_configuration_doc.py": "documentation; no Redis",
    "test_docs.py": "the OpenAPI document; no Redis",
}
collect_ignore = list(SINGLE_REDIS_ONLY) if CLUSTER_RUN else []

RUN_MARK = processes.mark_this_run()
processes.become_subreaper()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The run fails when a process it started (a server, `engage serve`, granian, a
    worker) is still alive once every test and fixture has finished; it is then killed."""
    if suite_dns.cache_info().currsize:
        suite_dns().stop()
    left = processes.leftovers(RUN_MARK, os.getpid())
    if not left:
        return
    processes.kill_all(RUN_MARK, os.getpid())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "processes left running by the tests (now killed)", red=True)
        for line in left:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@functools.cache
def suite_dns() -> DnsServer:
    """The DNS server (on 127.0.0.1) every app of this process looks webhook names up at,
    through ENGAGE_WEBHOOK_DNS: no test asks the system's resolver for a name. Started
    on first use, so a child process that builds an app gets its own."""
    return DnsServer(PUBLIC_NAMES).start()


@pytest.fixture
def name_server() -> Iterator[DnsServer]:
    """The suite's DNS server, for a test to set names on; as it started, after the test."""
    server = suite_dns()
    server.reset()
    yield server
    server.reset()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if CLUSTER_RUN:
        # tests/cluster.py's cluster has `.url` and `.client()` like RedisServer, and
        # `.client().flushall()` flushes every primary.
        from tests.cluster import LocalCluster

        cluster = LocalCluster().start()
        yield cluster  # type: ignore[misc]
        cluster.stop()
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def make_app(redis_url: str, tmp_path: Path, **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "TESTING": True,
        "REDIS_URL": redis_url,
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "test-secret-key-not-for-production",
        "LOG_JSON": False,
        "WEBHOOK_DNS": [suite_dns().address],
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A data directory for an embedded server under /tmp (unix socket paths are limited
    to ~100 characters); the server a test left running in it is stopped before the
    directory goes (a server whose directory is gone cannot save, and so ignores SIGTERM)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    yield path
    stop_embedded(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def app(redis_server: RedisServer, tmp_path: Path, app_config: dict[str, Any]) -> Iterator[Flask]:
    redis_server.client().flushall()
    app = make_app(redis_server.url, tmp_path, **app_config)
    yield app
    get_store_of(app).close()


def get_store_of(app: Flask) -> Any:
    with app.app_context():
        return get_store()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def store(app: Flask) -> Any:
    return get_store_of(app)


class Clock:
    """The store's clock for one test: it stands still until the test moves it."""

    def __init__(self, start: datetime) -> None:
        self.time = start

    def __call__(self) -> datetime:
        return self.time

    def set(self, when: datetime) -> None:
        self.time = when

    def advance(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)


@pytest.fixture
def clock(store: Any) -> Clock:
    """The app's store reads this clock, which starts at the real time, whole seconds."""
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    store.clock = clock
    return clock


@pytest.fixture
def catch_up(store: Any) -> Callable[[], int]:
    """Apply every new stream entry to the aggregates, as the worker does within
    seconds; returns how many entries it applied."""
    from engage.store.aggregates import Aggregator

    aggregator = Aggregator(store)

    def run() -> int:
        total = 0
        while applied := aggregator.step():
            total += applied
        return total

    return run


@pytest.fixture
def editor_token(store: Any) -> str:
    return tokens.create(store, "editor", "test editor")[0]


@pytest.fixture
def admin_token(store: Any) -> str:
    return tokens.create(store, "admin", "test admin")[0]


@pytest.fixture
def desk(client: FlaskClient, editor_token: str) -> Desk:
    """The dashboard, signed in as an editor, on the `client` fixture's cookies."""
    return Desk(client, editor_token)


@pytest.fixture
def admin_desk(app: Flask, admin_token: str) -> Desk:
    """The dashboard, signed in as an admin, on a client of its own."""
    return Desk(app.test_client(), admin_token)


@pytest.fixture
def editor(editor_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {editor_token}"}


@pytest.fixture
def admin(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


ARTICLE = {
    "title": "China and South Korea enter a new phase",
    "url": "https://news.example.com/diplomacy/korea-china-reset",
    "section": "Diplomacy",
    "published_at": "2026-01-08T09:00:00Z",
    "tags": ["China", "South Korea"],
}


@pytest.fixture
def article(client: FlaskClient, editor: dict[str, str]) -> str:
    response = client.put("/api/v1/articles/korea-china-reset", json=ARTICLE, headers=editor)
    assert response.status_code == 201, response.json
    return "korea-china-reset"


def new_reader(client: FlaskClient) -> dict[str, str]:
    response = client.post("/api/v1/readers")
    assert response.status_code == 201, response.json
    return {"X-Engage-Reader": response.json["reader"]}


@pytest.fixture
def reader(client: FlaskClient) -> dict[str, str]:
    return new_reader(client)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for this test alone, which it may stop, kill or pause."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


class Lines(logging.Handler):
    """Collects the request log's lines (engage.logs) as its formatter renders them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(RequestFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """The request log lines written during the test."""
    handler = Lines()
    request_log.addHandler(handler)
    yield handler.lines
    request_log.removeHandler(handler)


def _host(host: Any) -> str:
    return host.decode("ascii", "replace") if isinstance(host, bytes) else str(host or "")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host in ("", "localhost"):
        return True
    return _is_address(host) and ipaddress.ip_address(host.partition("%")[0]).is_loopback


@functools.cache
def network_use() -> list[str]:
    """Every name this process asks the system's resolver for and every connection or
    datagram to an address off loopback, from any thread, seen through the interpreter's
    audit events (sys.addaudithook: a hook cannot be removed, so one for the session)."""
    seen: list[str] = []

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in ("socket.getaddrinfo", "socket.gethostbyname"):
            host = _host(args[0])
            if not _is_loopback(host) and not _is_address(host):
                seen.append(f"{event} {host!r}")
        elif event == "socket.gethostbyaddr" and not _is_loopback(_host(args[0])):
            seen.append(f"{event} {_host(args[0])!r}")
        elif event in ("socket.connect", "socket.sendto"):
            address = args[1]
            if isinstance(address, tuple) and not _is_loopback(_host(address[0])):
                seen.append(f"{event} {address!r}")

    sys.addaudithook(hook)
    return seen


@pytest.fixture
def loopback_only() -> Iterator[None]:
    """Fails the test if it looked a name up with the system's resolver or sent anything
    off loopback."""
    seen = network_use()
    before = len(seen)
    yield
    assert seen[before:] == [], "the test used the network"
