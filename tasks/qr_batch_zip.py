"""A ZIP written one entry at a time whose central directory is spooled to disk, not memory.

``zipfile`` keeps a ZipInfo per entry (~350 bytes with its name and index) until it closes:
35 MB for 100,000 codes. Here each entry's central directory record is written to a spool
file as the entry is added and copied behind the entries on close, so memory stays flat
whatever the count. ZIP64 records are written when the count passes 65,535 or an offset
4 GiB, as APPNOTE 4.3.14-4.3.16 describe; every entry itself is far below 4 GiB.
"""

from __future__ import annotations

import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<4sIQI")
_ZIP64_OFFSET = struct.Struct("<HHQ")
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
STORED, DEFLATED = 0, 8


def _blocks(path: Path, size: int = 1 << 16) -> Iterator[bytes]:
    with path.open("rb") as source:
        while block := source.read(size):
            yield block


def _dos_time(moment: float) -> tuple[int, int]:
    t = time.localtime(moment)
    return (
        (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday,
    )


class StreamingZip:
    """``add`` entries, then ``close``; ``spool`` is a scratch path, removed on close."""

    def __init__(self, path: Path, spool: Path) -> None:
        self._out: BinaryIO = path.open("wb")
        self._spool_path = spool
        self._spool: BinaryIO = spool.open("w+b")
        self._offset = 0
        self._count = 0
        self._central_size = 0
        self._time, self._date = _dos_time(time.time())

    def add(self, name: str, data: bytes, deflate: bool = False) -> None:
        crc, size = zlib.crc32(data), len(data)
        if deflate:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = packer.compress(data) + packer.flush()
        self._write_header(name, DEFLATED if deflate else STORED, crc, len(data), size)
        self._out.write(data)
        self._offset += len(data)

    def add_file(self, name: str, source: Path) -> None:
        """The file at ``source`` (the manifest, 10 MB for 100,000 rows) as one deflated
        entry, read in blocks twice: once for its CRC and sizes, once to write it."""
        crc, size, packed = 0, 0, 0
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        for block in _blocks(source):
            crc, size = zlib.crc32(block, crc), size + len(block)
            packed += len(packer.compress(block))
        packed += len(packer.flush())
        self._write_header(name, DEFLATED, crc, packed, size)
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        for block in _blocks(source):
            self._out.write(packer.compress(block))
        self._out.write(packer.flush())
        self._offset += packed

    def _write_header(self, name: str, method: int, crc: int, packed: int, size: int) -> None:
        """The entry's local header, and its central directory record to the spool."""
        encoded = name.encode("utf-8")
        flags = 0 if name.isascii() else 0x800  # bit 11: the name is UTF-8
        header = _LOCAL.pack(
            b"PK\x03\x04",
            20,
            flags,
            method,
            self._time,
            self._date,
            crc,
            packed,
            size,
            len(encoded),
            0,
        )
        self._out.write(header + encoded)
        extra = b""
        offset = self._offset
        if offset > _MAX32:
            extra = _ZIP64_OFFSET.pack(0x0001, 8, offset)
            offset = _MAX32
        record = _CENTRAL.pack(
            b"PK\x01\x02",
            (3 << 8) | 45,
            45 if extra else 20,
            flags,
            method,
            self._time,
            self._date,
            crc,
            packed,
            size,
            len(encoded),
            len(extra),
            0,
            0,
            0,
            0o100644 << 16,
            offset,
        )
        self._spool.write(record + encoded + extra)
        self._central_size += len(record) + len(encoded) + len(extra)
        self._offset += len(header) + len(encoded)
        self._count += 1

    def close(self) -> None:
        try:
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, self._out)
            start, size, count = self._offset, self._central_size, self._count
            if count > _MAX16 or start > _MAX32 or size > _MAX32:
                end64 = start + size
                self._out.write(
                    _END64.pack(
                        b"PK\x06\x06", 44, (3 << 8) | 45, 45, 0, 0, count, count, size, start
                    )
                )
                self._out.write(_LOCATOR64.pack(b"PK\x06\x07", 0, end64, 1))
            self._out.write(
                _END.pack(
                    b"PK\x05\x06",
                    0,
                    0,
                    min(count, _MAX16),
                    min(count, _MAX16),
                    min(size, _MAX32),
                    min(start, _MAX32),
                    0,
                )
            )
        finally:
            self.discard()

    def discard(self) -> None:
        self._out.close()
        self._spool.close()
        self._spool_path.unlink(missing_ok=True)
