"""The settings that bound what one QR request may cost."""

from __future__ import annotations

import os

import pytest

from service.settings import SettingsError, load_settings


def test_defaults_bound_pixels_and_sync_renders_by_the_cores() -> None:
    settings = load_settings()
    assert settings.qr_max_pixels == 4_000_000
    assert settings.qr_max_sync_renders == len(os.sched_getaffinity(0))


def test_they_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_QR_MAX_PIXELS", "9000000")
    monkeypatch.setenv("OFFLOAD_QR_MAX_SYNC_RENDERS", "3")
    settings = load_settings()
    assert (settings.qr_max_pixels, settings.qr_max_sync_renders) == (9_000_000, 3)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # Below 217x217 pixels a version 40 code with border 20 fits at no scale.
        ("OFFLOAD_QR_MAX_PIXELS", "47088"),
        ("OFFLOAD_QR_MAX_PIXELS", "many"),
        ("OFFLOAD_QR_MAX_SYNC_RENDERS", "0"),
    ],
)
def test_an_invalid_one_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_the_smallest_pixel_limit_still_draws_every_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_QR_MAX_PIXELS", "47089")
    assert load_settings().qr_max_pixels == 217 * 217
