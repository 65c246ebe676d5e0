"""The streaming ZIP writer: read back by CPython's zipfile and Info-ZIP's unzip."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tasks.qr_batch_zip import StreamingZip


def unzip_test(path: Path) -> str:
    tool = shutil.which("unzip")
    if tool is None:
        pytest.fail("unzip is missing: apt-get install -y unzip")
    result = subprocess.run([tool, "-t", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_entries_read_back_stored_and_deflated(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    archive = StreamingZip(path, tmp_path / "a.directory")
    archive.add("000000-a.png", b"\x89PNG not really" * 10)
    archive.add("000001-b.svg", b"<svg>" + b"x" * 5000 + b"</svg>", deflate=True)
    archive.add("000002-empty.png", b"")
    archive.close()
    assert not (tmp_path / "a.directory").exists()
    with zipfile.ZipFile(path) as written:
        assert written.testzip() is None
        infos = written.infolist()
        assert [i.filename for i in infos] == ["000000-a.png", "000001-b.svg", "000002-empty.png"]
        assert [i.compress_type for i in infos] == [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, 0]
        assert infos[1].compress_size < 200
        assert written.read("000001-b.svg").endswith(b"x</svg>")
        assert all((i.external_attr >> 16) == 0o100644 for i in infos)
    assert "No errors detected" in unzip_test(path)


def test_more_than_65535_entries_get_zip64_records(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    archive = StreamingZip(path, tmp_path / "many.directory")
    for index in range(70_000):
        archive.add(f"{index:06d}-qr.png", b"%d" % index)
    archive.close()
    assert b"PK\x06\x06" in path.read_bytes()[-200:]
    with zipfile.ZipFile(path) as written:
        assert len(written.infolist()) == 70_000
        assert written.read("069999-qr.png") == b"69999"
    assert "No errors detected" in unzip_test(path)


def test_a_discarded_zip_leaves_no_spool(tmp_path: Path) -> None:
    archive = StreamingZip(tmp_path / "a.zip", tmp_path / "a.directory")
    archive.add("000000-a.png", b"x")
    archive.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_a_file_is_added_in_blocks(tmp_path: Path) -> None:
    source = tmp_path / "manifest.csv"
    content = b"".join(
        b"%d,000%d-qr.png,ok,,,,https://example.com/%d\r\n" % (i, i, i) for i in range(20_000)
    )
    source.write_bytes(content)
    assert len(content) > 4 * (1 << 16)
    path = tmp_path / "a.zip"
    archive = StreamingZip(path, tmp_path / "a.directory")
    archive.add("000000-a.png", b"png")
    archive.add_file("manifest.csv", source)
    archive.add("000001-b.png", b"after")
    archive.close()
    with zipfile.ZipFile(path) as written:
        assert written.testzip() is None
        assert written.read("manifest.csv") == content
        assert written.read("000001-b.png") == b"after"
    assert "No errors detected" in unzip_test(path)
