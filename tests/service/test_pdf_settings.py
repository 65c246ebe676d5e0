"""The settings that bound what one PDF may cost."""

from __future__ import annotations

import pytest

from service.settings import SettingsError, load_settings
from tasks.pdf_guard import DEFAULT_MAX_PAGES, DEFAULT_MAX_STREAM_BYTES
from tasks.pdf_jobs import pdf_limits_of


def test_the_defaults_are_the_guards() -> None:
    limits = pdf_limits_of(load_settings())
    assert (limits.max_pages, limits.max_stream_bytes) == (5_000, 50_000_000)
    assert limits.max_merge_bytes == 200_000_000
    assert (DEFAULT_MAX_PAGES, DEFAULT_MAX_STREAM_BYTES) == (5_000, 50_000_000)


def test_they_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_PDF_MAX_PAGES", "20")
    monkeypatch.setenv("OFFLOAD_PDF_MAX_STREAM_BYTES", "2000000")
    limits = pdf_limits_of(load_settings())
    assert (limits.max_pages, limits.max_stream_bytes) == (20, 2_000_000)
    assert limits.configuration()["zlib_maximum_output_length"] == 2_000_000


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OFFLOAD_PDF_MAX_PAGES", "0"), ("OFFLOAD_PDF_MAX_STREAM_BYTES", "1000")],
)
def test_values_that_cannot_work_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()
