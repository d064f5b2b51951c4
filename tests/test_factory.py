"""The app factory: configuration in, a working app out, or a clear refusal."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from engage import create_app
from engage.config import ConfigError
from engage.store import get_store
from engage.store.embedded import EmbeddedRedis
from tests.redis_server import stop_embedded


def clear_engage_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ENGAGE_"):
            monkeypatch.delenv(name)


def test_testing_app(app: Any) -> None:
    assert app.testing
    assert app.config["SECRET_KEY"]
    for name in ("engage.store", "engage.identity", "engage.api"):
        assert name in app.extensions
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_refuses_to_start_without_secret(monkeypatch: pytest.MonkeyPatch, redis_server: Any,
                                         tmp_path: Path) -> None:
    clear_engage_env(monkeypatch)
    monkeypatch.setenv("ENGAGE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ENGAGE_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="ENGAGE_SECRET_KEY"):
        create_app()
    # Refused before anything was started or written.
    assert list(tmp_path.iterdir()) == []


def test_env_configures_the_app(monkeypatch: pytest.MonkeyPatch, redis_server: Any,
                                tmp_path: Path) -> None:
    clear_engage_env(monkeypatch)
    monkeypatch.setenv("ENGAGE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ENGAGE_SECRET_KEY", "a-long-enough-secret-for-tests")
    monkeypatch.setenv("ENGAGE_CHOICES", "up,down")
    monkeypatch.setenv("ENGAGE_REASON_CHOICE", "down")
    monkeypatch.setenv("ENGAGE_TRUSTED_PROXIES", "10.0.0.0/8")
    app = create_app({"LOG_JSON": False})
    try:
        assert app.config["SECRET_KEY"] == "a-long-enough-secret-for-tests"
        assert app.config["CHOICES"] == ["up", "down"]
        assert app.config["TRUSTED_PROXIES"] == ["10.0.0.0/8"]
        assert app.config["REDIS_URL_RESOLVED"] == redis_server.url
        assert not app.testing
    finally:
        with app.app_context():
            get_store().close()


def test_bad_env_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_engage_env(monkeypatch)
    monkeypatch.setenv("ENGAGE_THROTTLE_WINDOW", "ten minutes")
    with pytest.raises(ConfigError, match="ENGAGE_THROTTLE_WINDOW"):
        create_app({"TESTING": True})


def test_demo_generates_and_keeps_a_secret(monkeypatch: pytest.MonkeyPatch,
                                           redis_server: Any) -> None:
    clear_engage_env(monkeypatch)
    data_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    config = {"DEMO": True, "DATA_DIR": str(data_dir), "REDIS_URL": redis_server.url,
              "LOG_JSON": False}
    first = create_app(config)
    second = create_app(config)
    try:
        secret_file = data_dir / "secret_key"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
        assert first.config["SECRET_KEY"] == secret_file.read_text().strip()
        # A reader token minted by one start is still valid after a restart.
        token = first.test_client().post("/api/v1/readers").get_json()["reader"]
        with second.test_request_context():
            from engage.identity import get_identity

            assert get_identity().reader_from_token(token)
    finally:
        for app in (first, second):
            with app.app_context():
                get_store().close()


def test_embedded_redis_when_no_url(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_engage_env(monkeypatch)
    data_dir = tempfile.mkdtemp(dir="/tmp")
    app = create_app({"TESTING": True, "DATA_DIR": data_dir, "LOG_JSON": False})
    embedded = EmbeddedRedis(data_dir)
    try:
        assert app.config["REDIS_URL_RESOLVED"] == embedded.url
        assert embedded.is_running()
        assert app.test_client().get("/readyz").status_code == 200
    finally:
        with app.app_context():
            get_store().close()
        stop_embedded(embedded.data_dir)
    assert not embedded.is_running()
