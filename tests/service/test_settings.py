"""Settings: invalid ones stop start-up with a message naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import main
from service.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OFFLOAD_LEASE_SECONDS", "0"),
        ("OFFLOAD_LEASE_SECONDS", "soon"),
        ("OFFLOAD_BROKER_URL", "amqp://localhost"),
        ("OFFLOAD_PURGE_CRON", "every five minutes"),
        ("OFFLOAD_LOG_FORMAT", "xml"),
        ("OFFLOAD_REDIS_PREFIX", "has space"),
        ("OFFLOAD_WEBHOOK_ALLOW_PRIVATE", "perhaps"),
        ("OFFLOAD_WEBHOOK_MAX_TRIES", "0"),
        ("OFFLOAD_WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("OFFLOAD_WEBHOOK_BACKOFF_CAP_SECONDS", "1"),  # below the base (30)
    ],
)
def test_an_invalid_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_the_cli_refuses_to_start_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OFFLOAD_MAX_BODY_BYTES", "-1")
    from service import settings

    settings.get_settings.cache_clear()
    try:
        assert main(["serve"]) == 2
    finally:
        settings.get_settings.cache_clear()
    assert "OFFLOAD_MAX_BODY_BYTES" in capsys.readouterr().err


def test_backend_and_paths_follow_the_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OFFLOAD_DATA_DIR", str(tmp_path))
    assert load_settings().backend == "sqlite"
    assert load_settings().sqlite_path == tmp_path / "offload.db"
    monkeypatch.setenv("OFFLOAD_BROKER_URL", f"sqlite:///{tmp_path}/elsewhere.db")
    assert load_settings().sqlite_path == tmp_path / "elsewhere.db"
    monkeypatch.setenv("OFFLOAD_BROKER_URL", "redis://localhost:6379/0")
    assert load_settings().backend == "redis"


@pytest.mark.parametrize(("value", "level"), [("debug", "DEBUG"), ("Warning", "WARNING")])
def test_the_log_level_is_read_in_any_case(
    monkeypatch: pytest.MonkeyPatch, value: str, level: str
) -> None:
    monkeypatch.setenv("OFFLOAD_LOG_LEVEL", value)
    assert load_settings().log_level == level


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OFFLOAD_LOG_LEVEL", "loud"),
        ("OFFLOAD_MAX_HEADER_BYTES", "0"),
        ("OFFLOAD_REQUEST_TIMEOUT_SECONDS", "0"),
    ],
)
def test_a_bad_log_level_or_http_limit_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_the_http_limits_have_safe_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OFFLOAD_MAX_HEADER_BYTES", raising=False)
    monkeypatch.delenv("OFFLOAD_REQUEST_TIMEOUT_SECONDS", raising=False)
    settings = load_settings()
    assert settings.max_header_bytes == 64 * 1024
    assert settings.request_timeout_seconds == 30
