"""gunicorn, the alternative server: the requests it refuses before the app runs get
engage's JSON error, not its HTML page; gunicorn.conf.py's settings.

engage under real gunicorn, spoken to over raw sockets: with the repository's
gunicorn.conf.py (sync worker, as `engage serve --server gunicorn` runs it) and with the
threaded worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from engage.server import refusal_for
from tests.faults import REPO, Gunicorn, exchange
from tests.redis_server import RedisServer

PATH = b"/api/v1/articles/target/reactions"


@pytest.fixture(params=["conf", "threads"])
def gunicorn(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Gunicorn]:
    server = Gunicorn(redis_server.url, tmp_path, workers=1, threads=4)
    args = server.args
    at = args.index("--worker-class")
    if request.param == "conf":
        # The worker class and limits come from the file; one thread keeps its sync worker.
        args[at:at + 2] = ["--config", str(REPO / "gunicorn.conf.py")]
        args[args.index("--threads") + 1] = "1"
        server.env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    else:
        args[at + 1] = "engage.server.ThreadWorker"
    server.start()
    try:
        yield server
    finally:
        server.stop()




def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), headers, body


REFUSED = {
    "request line of 10 KB": (
        b"GET /" + b"a" * 10_240 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    "200 headers": (
        b"GET " + PATH + b" HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % n for n in range(200)) + b"\r\n",
        431, "headers_too_large"),
    "one header of 20 KB": (
        b"GET " + PATH + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_480 + b"\r\n\r\n",
        431, "headers_too_large"),
    "garbage request line": (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
        400, "bad_request"),
    "invalid header name": (
        b"GET " + PATH + b" HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400, "bad_request"),
    "NUL in a header value": (
        b"GET " + PATH + b" HTTP/1.1\r\nHost: x\r\nX-Engage-Reader: a\x00b\r\n\r\n",
        400, "bad_request"),
    "unknown HTTP version": (b"GET " + PATH + b" HTTP/7.1\r\nHost: x\r\n\r\n",
                             400, "bad_request"),
}


def test_refused_requests_get_the_json_error(gunicorn: Gunicorn) -> None:
    workers = gunicorn.worker_pids()
    for name, (data, status, code) in REFUSED.items():
        got, headers, body = parse(exchange(gunicorn.port, data))
        assert got == status, (name, got, body[:200])
        assert headers["content-type"] == "application/json", name
        assert headers["connection"] == "close", name
        assert int(headers["content-length"]) == len(body), name
        error = json.loads(body)["error"]
        assert error["code"] == code and error["message"], name
        assert set(error) == {"code", "message"}, name
    assert gunicorn.worker_pids() == workers  # no worker died over it
    assert requests.get(gunicorn.url + PATH.decode(), timeout=5).status_code == 404
    # Each refusal has its request line and is counted, like any request engage answers.
    lines = [line for line in gunicorn.log().splitlines() if " refused " in line]
    assert sorted(int(line.split()[2]) for line in lines) == sorted(
        status for _, status, _ in REFUSED.values()), lines
    # No line names the client's address, gunicorn's warnings included.
    assert "127.0.0.1" not in gunicorn.log()
    scrape = requests.get(gunicorn.url + "/metrics", timeout=5).text
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
                  if line.startswith("engage_http_requests_total{")
                  and 'route="refused"' in line)
    assert counted == len(REFUSED)


def test_conf_request_line_fits_a_full_batch_read(gunicorn: Gunicorn) -> None:
    """gunicorn.conf.py's request line limit takes a batch of 100 ids of 60 characters,
    which gunicorn's default refuses."""
    query = "&".join(f"article={n:060d}" for n in range(100))
    response = requests.get(f"{gunicorn.url}/api/v1/reactions?{query}", timeout=5)
    if "--config" in gunicorn.args:
        assert response.status_code == 200, response.text[:200]
        assert len(response.json()["unknown"]) == 100
    else:
        assert response.status_code == 414
        assert response.json()["error"]["code"] == "uri_too_long"


def test_errors_of_the_app_itself_keep_gunicorns_answer() -> None:
    from gunicorn.http import errors

    # A header the app tried to send is the app's fault: gunicorn's 500 stands.
    assert refusal_for(errors.InvalidResponseHeader("X-Bad")) is None
    assert refusal_for(errors.InvalidResponseHeaderName("Bad Name")) is None
    assert refusal_for(RuntimeError("boom")) is None
    refusal = refusal_for(errors.LimitRequestLine(9000, 8190))
    assert refusal is not None and refusal.status == "414 URI Too Long"


def test_config_file_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Workers from ENGAGE_WORKERS (else from the CPUs); a metrics dir always set, emptied
    of old .db files (only those) when the server starts, and removed on exit when the
    file made it."""
    import os
    import runpy

    conf = REPO / "gunicorn.conf.py"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.setenv("ENGAGE_WORKERS", "")
    settings = runpy.run_path(str(conf))
    assert settings["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.is_dir()
    settings["on_exit"](None)
    assert not made.exists()

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"old")
    (metrics_dir / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    monkeypatch.setenv("ENGAGE_WORKERS", "3")
    settings = runpy.run_path(str(conf))
    assert settings["workers"] == 3
    settings["on_starting"](None)
    settings["on_exit"](None)
    assert sorted(p.name for p in metrics_dir.iterdir()) == ["keep.txt"]
