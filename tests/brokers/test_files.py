"""Result files on disk: ids are checked before any path is built; deletes leave no folders."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from brokers.files import LocalFileStore

JOB_ID = "0123456789abcdef0123456789abcd00"


def saved(store: LocalFileStore, job_id: str, file_id: str = "qr") -> Path:
    store.save(job_id, file_id, "qr.png", b"content", "image/png")
    path = store.path(job_id, file_id)
    assert path is not None
    return path


@pytest.mark.parametrize(
    "job_id",
    [
        "..",
        "../" + JOB_ID[3:],
        JOB_ID.upper(),
        JOB_ID[:-1],
        JOB_ID + "0",
        JOB_ID + "\n",
        JOB_ID[:-2] + "/.",
        "",
    ],
)
def test_a_malformed_job_id_builds_no_path(tmp_path: Path, job_id: str) -> None:
    store = LocalFileStore(tmp_path / "files")
    with pytest.raises(ValueError, match="job id"):
        store.path(job_id, "qr")
    with pytest.raises(ValueError, match="job id"):
        store.delete(job_id)


@pytest.mark.parametrize(
    "file_id",
    [
        "..",
        "../../outside",
        "../../../outside",
        "../" + JOB_ID + "/qr",
        "a/b",
        "/etc/passwd",
        ".hidden",
        "a..b",
        "-flag",
        "qr\n",
        "qr\x00",
        "x" * 65,
        "",
    ],
)
def test_a_malformed_file_id_builds_no_path(tmp_path: Path, file_id: str) -> None:
    root = tmp_path / "files"
    store = LocalFileStore(root)
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    saved(store, JOB_ID)
    with pytest.raises(ValueError, match="file id"):
        store.path(JOB_ID, file_id)


@pytest.mark.parametrize("file_id", ["qr", "page-1.pdf", "A_b.c", "x" * 64])
def test_ordinary_file_ids_are_found(tmp_path: Path, file_id: str) -> None:
    store = LocalFileStore(tmp_path)
    assert saved(store, JOB_ID, file_id).read_bytes() == b"content"


def test_delete_removes_the_shard_folder_once_it_is_empty(tmp_path: Path) -> None:
    root = tmp_path / "files"
    store = LocalFileStore(root)
    neighbour = "f" * 30 + "00"
    saved(store, JOB_ID)
    saved(store, neighbour)
    store.delete(JOB_ID)
    assert sorted(p.name for p in (root / "00").iterdir()) == [neighbour], "neighbour kept"
    store.delete(neighbour)
    assert list(root.iterdir()) == []
    store.delete(neighbour)  # deleting twice is harmless


def test_shard_removal_never_makes_a_concurrent_save_fail(tmp_path: Path) -> None:
    """Deleting a shard's last job races with a save into the same shard: the save must win."""
    store = LocalFileStore(tmp_path / "files")
    failures: list[BaseException] = []
    stop = threading.Event()

    def write_and_delete(prefix: str) -> None:
        try:
            for n in range(500):
                job_id = f"{prefix}{n:08x}".ljust(30, "0") + "00"
                saved(store, job_id)
                store.delete(job_id)
                if stop.is_set():
                    return
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)
            stop.set()

    threads = [threading.Thread(target=write_and_delete, args=(p,)) for p in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_scratch_file_kept_becomes_the_result_with_its_size_and_digest(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    scratch = store.scratch(JOB_ID, ".zip")
    content = b"x" * 3_000_000
    scratch.write_bytes(content)
    kept = store.keep(JOB_ID, "archive-1", "codes.zip", scratch, "application/zip")
    assert (kept.size, kept.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert store.path(JOB_ID, "archive-1") is not None and not scratch.exists()
    assert store.path(JOB_ID, "archive-1").read_bytes() == content  # type: ignore[union-attr]


def test_a_scratch_file_is_kept_under_a_relative_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`./dev serve` keeps data in ./offload-data: a relative root."""
    monkeypatch.chdir(tmp_path)
    store = LocalFileStore(Path("offload-data") / "files")
    scratch = store.scratch(JOB_ID, ".pdf")
    scratch.write_bytes(b"%PDF-1.7")
    kept = store.keep(JOB_ID, "sheet-1", "sheet.pdf", scratch, "application/pdf")
    assert kept.size == 8 and store.path(JOB_ID, "sheet-1") is not None


def test_only_the_jobs_own_scratch_files_can_be_kept(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    outside = tmp_path / "elsewhere.zip"
    outside.write_bytes(b"not a scratch file")
    other_job = store.scratch("f" * 32)
    for written in (outside, other_job):
        with pytest.raises(ValueError, match="not a scratch file"):
            store.keep(JOB_ID, "archive", "codes.zip", written, "application/zip")
    assert outside.exists() and other_job.exists()
