"""Configuration from ENGAGE_* variables: parsing, defaults and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from engage.config import SETTINGS, ConfigError, load_config, resolve_secret


def test_defaults_without_environment() -> None:
    config = load_config(environ={})
    assert set(config) == {s.name for s in SETTINGS}
    assert config["CHOICES"] == ["yes", "no"]
    assert config["REDIS_URL"] is None
    assert config["DATA_DIR"] == "./var"
    assert config["TRUSTED_PROXIES"] == []
    assert config["DEMO"] is False
    assert config["THROTTLE_VOTES"] == 60


def test_defaults_are_copies() -> None:
    config = load_config(environ={})
    config["CHOICES"].append("maybe")
    assert load_config(environ={})["CHOICES"] == ["yes", "no"]


def test_every_setting_has_a_reason() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    for setting in SETTINGS:
        assert setting.name.isupper() and not setting.name.startswith("ENGAGE_")
        assert setting.why.strip().endswith("."), setting.name


def test_env_parsing() -> None:
    config = load_config(environ={
        "ENGAGE_TRUSTED_PROXIES": " 10.0.0.0/8 , 127.0.0.1/32,,",
        "ENGAGE_CHOICES": "up,down",
        "ENGAGE_REASON_CHOICE": "down",
        "ENGAGE_DEMO": "yes",
        "ENGAGE_LOG_JSON": "off",
        "ENGAGE_THROTTLE_VOTES": "7",
        "ENGAGE_REDIS_SOCKET_TIMEOUT": "0.25",
        "ENGAGE_REDIS_URL": "unix:///tmp/x.sock",
        "OTHER_THING": "ignored",
    })
    assert config["TRUSTED_PROXIES"] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert config["CHOICES"] == ["up", "down"]
    assert config["DEMO"] is True
    assert config["LOG_JSON"] is False
    assert config["THROTTLE_VOTES"] == 7
    assert config["REDIS_SOCKET_TIMEOUT"] == 0.25
    assert config["REDIS_URL"] == "unix:///tmp/x.sock"
    assert "OTHER_THING" not in config


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "on", "Yes"])
def test_true_values(raw: str) -> None:
    assert load_config(environ={"ENGAGE_DEMO": raw})["DEMO"] is True


@pytest.mark.parametrize("raw", ["0", "false", "off", "No", ""])
def test_false_values(raw: str) -> None:
    assert load_config(environ={"ENGAGE_DEMO": raw})["DEMO"] is False


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("ENGAGE_THROTTLE_VOTES", "lots"),
        ("ENGAGE_DEMO", "perhaps"),
        ("ENGAGE_REDIS_SOCKET_TIMEOUT", "soon"),
        ("ENGAGE_MAX_CONTENT_LENGTH", "64k"),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config(environ={name: raw})


def test_webhook_dns_servers() -> None:
    assert load_config(environ={})["WEBHOOK_DNS"] == []  # the system's resolver
    config = load_config(environ={
        "ENGAGE_WEBHOOK_DNS": "127.0.0.1:5353, [::1]:53,9.9.9.9,2620:fe::fe",
        "ENGAGE_WEBHOOK_DNS_TIMEOUT": "0.5"})
    assert config["WEBHOOK_DNS"] == [("127.0.0.1", 5353), ("::1", 53), ("9.9.9.9", 53),
                                     ("2620:fe::fe", 53)]
    assert config["WEBHOOK_DNS_TIMEOUT"] == 0.5


@pytest.mark.parametrize("raw", ["dns.example.net:53", "10.0.0.1:0", "10.0.0.1:65536",
                                 "10.0.0.1:dns", "[::1]", "10.0.0.1:53,resolver"])
def test_webhook_dns_takes_addresses_and_ports_only(raw: str) -> None:
    with pytest.raises(ConfigError, match="ENGAGE_WEBHOOK_DNS"):
        load_config(environ={"ENGAGE_WEBHOOK_DNS": raw})


@pytest.mark.parametrize("raw", ["0", "-1"])
def test_webhook_dns_timeout_is_above_zero(raw: str) -> None:
    with pytest.raises(ConfigError, match="ENGAGE_WEBHOOK_DNS_TIMEOUT must be above 0"):
        load_config(environ={"ENGAGE_WEBHOOK_DNS_TIMEOUT": raw})


def test_bad_combinations() -> None:
    with pytest.raises(ConfigError, match="ENGAGE_CHOICES"):
        load_config(environ={"ENGAGE_CHOICES": "only"})
    with pytest.raises(ConfigError, match="ENGAGE_REASON_CHOICE"):
        load_config(environ={"ENGAGE_CHOICES": "up,down"})


def test_overrides_win_over_environment() -> None:
    config = load_config(environ={"ENGAGE_THROTTLE_VOTES": "7"},
                         overrides={"THROTTLE_VOTES": 9})
    assert config["THROTTLE_VOTES"] == 9


def test_secret_rules(tmp_path: Path) -> None:
    base = load_config(environ={})
    with pytest.raises(ConfigError, match="ENGAGE_SECRET_KEY"):
        resolve_secret(base)
    with pytest.raises(ConfigError, match="at least 16"):
        resolve_secret({**base, "SECRET_KEY": "short"})
    assert resolve_secret({**base, "SECRET_KEY": "x" * 32}) == "x" * 32
    testing = {**base, "TESTING": True}
    assert resolve_secret(testing) != resolve_secret(testing)


def test_demo_secret_is_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = {**load_config(environ={}), "DEMO": True, "DATA_DIR": str(data_dir)}
    first = resolve_secret(config)
    path = data_dir / "secret_key"
    assert path.read_text().strip() == first
    assert len(first) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert resolve_secret(config) == first
