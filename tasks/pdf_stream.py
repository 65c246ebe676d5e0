"""A PDF written object by object to a file, so a long document never sits in memory.

pypdf's PdfWriter keeps every page until ``write``; here each object goes to the file when it
is made, and only its offset is kept for the cross-reference table. Objects are pypdf's own
(``DictionaryObject``, ``StreamObject``...), serialised by pypdf, so names and strings are
escaped by the library. An object that others refer to before it exists (the page tree, the
font) is ``reserve``d first and written later.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from pypdf.generic import (
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    StreamObject,
)

HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


class StreamingPdf:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._offsets: list[int | None] = []
        out.write(HEADER)

    def reserve(self) -> IndirectObject:
        """A number for an object written later with ``write(obj, ref)``."""
        self._offsets.append(None)
        return IndirectObject(len(self._offsets), 0, None)

    def add(self, obj: PdfObject, ref: IndirectObject | None = None) -> IndirectObject:
        """Write ``obj`` now, as a new object or as the ``reserve``d ``ref``."""
        ref = ref or self.reserve()
        if self._offsets[ref.idnum - 1] is not None:
            raise ValueError(f"object {ref.idnum} is already written")
        self._offsets[ref.idnum - 1] = self._out.tell()
        self._out.write(b"%d 0 obj\n" % ref.idnum)
        obj.write_to_stream(self._out)
        self._out.write(b"\nendobj\n")
        return ref

    def add_stream(
        self, data: bytes, level: int = 6, extra: DictionaryObject | None = None
    ) -> IndirectObject:
        """A Flate-compressed stream of ``data`` (a content stream unless ``extra`` says)."""
        stream = StreamObject()
        if extra:
            stream.update(extra)
        stream[NameObject("/Filter")] = NameObject("/FlateDecode")
        stream.set_data(zlib.compress(data, level))
        return self.add(stream)

    def close(self, root: IndirectObject, info: IndirectObject | None = None) -> None:
        """Write the cross-reference table and trailer; every reserved object must exist."""
        missing = [n + 1 for n, offset in enumerate(self._offsets) if offset is None]
        if missing:
            raise ValueError(f"objects {missing[:5]} were reserved but never written")
        xref = self._out.tell()
        lines = [b"xref\n0 %d\n" % (len(self._offsets) + 1), b"0000000000 65535 f \n"]
        lines.extend(b"%010d 00000 n \n" % offset for offset in self._offsets if offset)
        self._out.write(b"".join(lines))
        trailer = DictionaryObject(
            {
                NameObject("/Size"): NumberObject(len(self._offsets) + 1),
                NameObject("/Root"): root,
            }
        )
        if info is not None:
            trailer[NameObject("/Info")] = info
        self._out.write(b"trailer\n")
        trailer.write_to_stream(self._out)
        self._out.write(b"\nstartxref\n%d\n%%%%EOF\n" % xref)
