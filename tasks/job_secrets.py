"""Secrets in a job's request (a PDF's passwords), sealed before the job is stored.

The job record and its queued message hold only ``sealed:v1:<AES-SIV ciphertext>``; the task
unseals it when it needs it. The key is 64 random bytes in ``<data_dir>/keys/`` (mode 0600),
made by whichever process needs it first: the API and its workers share the data directory
anyway (uploads and results live there), and a copy of the database or of Redis alone does
not give the passwords away. AES-SIV is deterministic: the same password seals the same
way, so a repeated submit with an Idempotency-Key still matches its first body.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import BaseModel, SecretStr

from schemas.pdf import SEALED_PREFIX

SEALED = SEALED_PREFIX
KEY_BYTES = 64
"""AES-256-SIV: two 256-bit keys."""
KEY_FILE = Path("keys") / "job-secrets.key"


class SecretUnreadable(Exception):
    """A sealed secret this server's key does not open (the key file was replaced)."""

    error_type = "secret_unreadable"


def seal(secret: str, data_dir: Path) -> str:
    token = AESSIV(_key(data_dir)).encrypt(secret.encode(), None)
    return SEALED + base64.urlsafe_b64encode(token).decode()


def unseal(value: str, data_dir: Path) -> str:
    """The secret ``value`` seals; a value not sealed (a task kicked without the API, as
    tests do) is returned as it is."""
    if not value.startswith(SEALED):
        return value
    try:
        token = base64.urlsafe_b64decode(value.removeprefix(SEALED))
        return AESSIV(_key(data_dir)).decrypt(token, None).decode()
    except (InvalidTag, ValueError):
        raise SecretUnreadable(
            "a password of this job cannot be unsealed: this server's key "
            f"({KEY_FILE}) changed since it was submitted; submit it again"
        ) from None


def seal_fields(request: BaseModel, names: tuple[str, ...], data_dir: Path) -> None:
    """Replace each SecretStr field of ``request`` in ``names`` by its sealed form, in place:
    what the job stores is then sealed (the submit route stores the request as it is now)."""
    for name in names:
        secret = getattr(request, name, None)
        if isinstance(secret, SecretStr):
            setattr(request, name, SecretStr(seal(secret.get_secret_value(), data_dir)))


def opened(secret: SecretStr | None, data_dir: Path) -> str | None:
    return None if secret is None else unseal(secret.get_secret_value(), data_dir)


def _key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(AESSIV.generate_key(KEY_BYTES * 8))
            file.flush()
            os.fsync(file.fileno())
        # link() fails if another process made the key first: then that one is the key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return _read(path)


def _read(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise SecretUnreadable(f"{KEY_FILE} holds {len(key)} bytes, not {KEY_BYTES}")
    return key
