"""The `engage` command (tokens, seed, serve) and the embedded Redis it relies on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engage.cli import main
from engage.store.embedded import EmbeddedRedis, _alive, redis_server_binary
from tests.conftest import ARTICLE, make_app
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SEED_IDS = [entry["id"] for entry in json.loads((ROOT / "seeds" / "articles.json").read_text())]


@pytest.fixture
def run(own_redis: RedisServer, tmp_path: Path) -> Any:
    runner = CliRunner()
    env = {name: None for name in os.environ if name.startswith("ENGAGE_")}
    env.update({
        "ENGAGE_REDIS_URL": own_redis.url,
        "ENGAGE_SECRET_KEY": "cli-test-secret-long-enough",
        "ENGAGE_DATA_DIR": str(tmp_path / "data"),
        "ENGAGE_LOG_JSON": "0",
    })

    def invoke(*args: str) -> Any:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        return result

    return invoke


def put_article(own_redis: RedisServer, tmp_path: Path, token: str) -> int:
    app = make_app(own_redis.url, tmp_path, SECRET_KEY="cli-test-secret-long-enough")
    response = app.test_client().put("/api/v1/articles/cli-article", json=ARTICLE,
                                     headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def test_token_lifecycle(run: Any, own_redis: RedisServer, tmp_path: Path) -> None:
    created = run("token", "create", "--role", "editor", "--name", "night desk")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("eng_") and "\n" not in token
    assert put_article(own_redis, tmp_path, token) == 201

    listed = run("token", "list")
    assert listed.exit_code == 0
    token_id, _, secret = token[len("eng_"):].partition(".")
    assert token_id in listed.stdout
    assert "editor" in listed.stdout and "night desk" in listed.stdout
    assert secret not in listed.stdout
    # Redis holds only a digest of the secret.
    stored = own_redis.client().hget("engage:tokens", token_id)
    assert stored is not None and secret not in stored

    revoked = run("token", "revoke", token_id)
    assert revoked.exit_code == 0
    assert token_id not in run("token", "list").stdout
    assert put_article(own_redis, tmp_path, token) == 401
    again = run("token", "revoke", token_id)
    assert again.exit_code != 0
    assert "no token" in again.output


def test_token_roles(run: Any) -> None:
    assert run("token", "create", "--role", "admin").exit_code == 0
    bad = run("token", "create", "--role", "owner")
    assert bad.exit_code != 0


def test_refuses_without_secret(own_redis: RedisServer) -> None:
    env: dict[str, str | None] = {n: None for n in os.environ if n.startswith("ENGAGE_")}
    env["ENGAGE_REDIS_URL"] = own_redis.url
    result = CliRunner().invoke(main, ["token", "list"], env=env)
    assert result.exit_code != 0
    assert "ENGAGE_SECRET_KEY" in result.output


def test_seed_is_idempotent(run: Any, own_redis: RedisServer) -> None:
    first = run("seed")
    assert first.exit_code == 0, first.output
    assert f"{len(SEED_IDS)} articles" in first.stdout
    client = own_redis.client()

    def state() -> dict[str, Any]:
        return {
            aid: (client.hgetall(f"engage:a:{{{aid}}}:counts"),
                  client.hlen(f"engage:a:{{{aid}}}:voters"),
                  client.hget(f"engage:a:{{{aid}}}", "title"))
            for aid in SEED_IDS
        }

    before = state()
    assert before["korea-china-reset"][2]
    assert sum(int(n) for n in before["korea-china-reset"][0].values()) > 0
    second = run("seed")
    assert second.exit_code == 0
    assert f"{len(SEED_IDS)} articles" in second.stdout
    assert state() == before
    assert client.hget("engage:a:{korea-china-reset}", "section") == "Diplomacy"


# -- the embedded Redis ------------------------------------------------------------------
@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 characters: keep it short.
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    yield path
    EmbeddedRedis(path).stop()
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_redis_starts_reuses_and_persists(short_dir: Path) -> None:
    embedded = EmbeddedRedis(short_dir)
    assert not embedded.is_running()
    url = embedded.ensure_running()
    assert url == f"unix://{short_dir.resolve()}/redis.sock"
    pid = embedded.pid()
    assert pid is not None and _alive(pid)
    assert Path(f"/proc/{pid}/exe").resolve() == Path(redis_server_binary()).resolve()
    # A second caller (another worker, the CLI) reuses the running server.
    assert EmbeddedRedis(short_dir).ensure_running() == url
    assert embedded.pid() == pid

    import redis

    client = redis.Redis(unix_socket_path=str(embedded.socket), decode_responses=True)
    client.set("engage:survivor", "still here")
    client.close()
    embedded.stop()
    assert not embedded.is_running()
    assert not _alive(pid)
    assert (short_dir / "engage.aof").exists()

    embedded.ensure_running()
    assert embedded.pid() != pid
    client = redis.Redis(unix_socket_path=str(embedded.socket), decode_responses=True)
    assert client.get("engage:survivor") == "still here"
    client.close()


def test_embedded_redis_replaces_a_stale_socket(short_dir: Path) -> None:
    embedded = EmbeddedRedis(short_dir)
    embedded.ensure_running()
    pid = embedded.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert embedded.socket.exists()  # a killed server leaves its socket behind
    start = time.monotonic()
    embedded.ensure_running()
    assert time.monotonic() - start < 3
    assert embedded.is_running() and embedded.pid() != pid


# -- engage serve --demo, the README's first command -----------------------------------
def engage_command() -> list[str]:
    script = Path(sys.executable).parent / "engage"
    return [str(script)] if script.exists() else [sys.executable, "-m", "engage.cli"]


def fetch(url: str, method: str = "GET", body: Any = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_serve_refuses_before_starting_redis() -> None:
    data_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env["ENGAGE_DATA_DIR"] = str(data_dir)
    result = subprocess.run([*engage_command(), "serve", "--bind", f"127.0.0.1:{free_port()}"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ENGAGE_SECRET_KEY" in result.stderr
    embedded = EmbeddedRedis(data_dir)
    assert not embedded.is_running() and embedded.pid() is None
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.slow
def test_serve_demo_with_embedded_redis() -> None:
    data_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env["ENGAGE_DATA_DIR"] = str(data_dir)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [*engage_command(), "serve", "--demo", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        env=env, cwd=data_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    embedded = EmbeddedRedis(data_dir)
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            try:
                status, _ = fetch(base + "/readyz")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
        assert embedded.is_running()

        status, counts = fetch(base + "/api/v1/articles/korea-china-reset/reactions")
        assert status == 200
        assert counts["article"] == "korea-china-reset" and counts["mine"] is None
        status, minted = fetch(base + "/api/v1/readers", "POST")
        assert status == 201
        reader = {"X-Engage-Reader": minted["reader"]}
        status, voted = fetch(base + "/api/v1/articles/korea-china-reset/reactions/mine", "PUT",
                              {"choice": "yes"}, reader)
        assert status == 200
        assert voted["mine"] == "yes"
        assert voted["counts"]["yes"] == counts["counts"]["yes"] + 1
        status, after = fetch(base + "/api/v1/articles/korea-china-reset/reactions",
                              headers=reader)
        assert after["mine"] == "yes" and after["total"] == counts["total"] + 1
        redis_pid = embedded.pid()
        assert redis_pid is not None
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    assert process.returncode == 0, err[-2000:]
    assert "korea-china-reset" in out
    assert "admin token" in out
    # The embedded Redis went down with engage, and its data stayed on disk.
    assert not embedded.is_running()
    assert not _alive(redis_pid)
    assert (data_dir / "engage.aof").exists()
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600
    shutil.rmtree(data_dir, ignore_errors=True)
