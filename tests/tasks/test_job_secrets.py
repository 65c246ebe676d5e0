"""Passwords in a job's request are sealed with a key of the data directory."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from schemas.pdf import PdfEncryptRequest
from tasks.job_secrets import KEY_FILE, SEALED, SecretUnreadable, seal, seal_fields, unseal


def test_a_sealed_secret_opens_only_with_its_key(tmp_path: Path) -> None:
    sealed = seal("hunter2", tmp_path)
    assert sealed.startswith(SEALED)
    assert "hunter2" not in sealed
    assert unseal(sealed, tmp_path) == "hunter2"
    assert seal("hunter2", tmp_path) == sealed  # deterministic: idempotent submits match
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    with pytest.raises(SecretUnreadable, match="key"):
        unseal(sealed, tmp_path / "another")


def test_processes_racing_to_make_the_key_agree_on_one(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        sealed = set(pool.map(lambda _: seal("same", tmp_path), range(16)))
    assert len(sealed) == 1


def test_an_unsealed_value_passes_as_it_is(tmp_path: Path) -> None:
    assert unseal("plain", tmp_path) == "plain"


def test_seal_fields_leaves_only_sealed_passwords_in_the_stored_request(tmp_path: Path) -> None:
    request = PdfEncryptRequest(
        file_id="f", password="in-pw", user_password="user-pw", owner_password=None
    )
    seal_fields(request, ("password", "user_password", "owner_password"), tmp_path)
    stored = request.model_dump_json()
    assert "in-pw" not in stored
    assert "user-pw" not in stored
    assert stored.count(SEALED) == 2
    again = PdfEncryptRequest.model_validate_json(stored)
    assert isinstance(again.user_password, SecretStr)
    assert unseal(again.user_password.get_secret_value(), tmp_path) == "user-pw"
    assert "sealed" not in repr(again)


def test_the_longest_password_still_parses_once_sealed(tmp_path: Path) -> None:
    request = PdfEncryptRequest(file_id="f", user_password="x" * 128)
    seal_fields(request, request.SECRETS, tmp_path)
    again = PdfEncryptRequest.model_validate_json(request.model_dump_json())
    assert unseal(again.user_password.get_secret_value(), tmp_path) == "x" * 128
    with pytest.raises(ValueError, match="at most 128 characters"):
        PdfEncryptRequest(file_id="f", user_password="x" * 129)
