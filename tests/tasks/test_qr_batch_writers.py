"""Bulk QR's pure parts: names, manifest, CSV items, drawing, the archive; zbar judges codes."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree

import pytest

from schemas.qr import ErrorCorrection
from schemas.qr_batch import BatchFormat, QrBatchItem, QrBatchOptions
from tasks.qr_batch_archive import MANIFEST_NAME, QrArchive
from tasks.qr_batch_draw import DrawnItem, DrawOptions, draw_chunk
from tasks.qr_batch_items import BatchInputError, BatchItem, csv_items, inline_items
from tasks.qr_batch_manifest import ManifestRow, ManifestWriter, spreadsheet_safe
from tasks.qr_batch_names import ARCHIVE_NAME, archive_name, slug
from tasks.qr_batch_render import render_png, render_svg
from tasks.qr_matrix import qr_modules
from tests.support.qr_decode import decode, decode_png, decode_svg

HOSTILE_NAMES = [
    "../../x",
    "/etc/passwd",
    "..\\x",
    "CON",
    "a" * 300,
    "a\x00b",
    "\u202egnp.exe",
    ".hidden",
    "...",
    "",
    "日本",
    "C:\\Windows\\system32",
    "x/../../../y",
]
SCRIPT_LABEL = "</svg><script>alert(1)</script><a onload=x>"
BLACK, WHITE = (0, 0, 0, 255), (255, 255, 255, 255)


def options(**fields: object) -> QrBatchOptions:
    return QrBatchOptions.model_validate({"items": [{"data": "x"}], **fields})


def drawn(
    items: Sequence[Mapping[str, object]], fmt: str = "png", **fields: object
) -> list[DrawnItem]:
    request = QrBatchOptions.model_validate({"items": items, "format": fmt, **fields})
    draw = DrawOptions(
        format=request.format, scale=request.scale, border=request.border, max_png_pixels=4_000_000
    )
    return draw_chunk(list(inline_items(request)), draw)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_never_become_paths(name: str) -> None:
    made = archive_name(123, name, "png")
    assert ARCHIVE_NAME.fullmatch(made), made
    assert made.startswith("000123-") and "/" not in made and "\\" not in made
    assert ".." not in made and not slug(name).startswith(".")
    assert 1 <= len(slug(name)) <= 64


def test_readable_names_stay_readable() -> None:
    assert archive_name(0, "Café Münster 2024", "svg") == "000000-Cafe-Munster-2024.svg"
    assert archive_name(7, "ticket_7.v2", "png") == "000007-ticket_7.v2.png"
    assert archive_name(8, None, "png") == "000008-qr.png"


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "\0=1"])
def test_manifest_cells_that_spreadsheets_would_run_start_with_a_quote(cell: str) -> None:
    out = io.StringIO(newline="")
    writer = ManifestWriter(out)
    writer.write(ManifestRow(item=0, file=None, error=None, name=cell, label=cell, data=cell))
    [header, row] = list(csv.reader(io.StringIO(out.getvalue())))
    assert header[:4] == ["item", "file", "status", "error"]
    assert row[0] == "0" and row[2] == "ok"
    assert row[4:] == ["'" + cell] * 3


def test_manifest_quoting_round_trips() -> None:
    out = io.StringIO(newline="")
    writer = ManifestWriter(out)
    writer.write(ManifestRow(3, "000003-a.png", None, 'a "quoted", comma', "two\nlines", "ok"))
    writer.write(ManifestRow(4, None, "too long", None, None, "x"))
    [_, first, second] = list(csv.reader(io.StringIO(out.getvalue())))
    assert first == ["3", "000003-a.png", "ok", "", 'a "quoted", comma', "two\nlines", "ok"]
    assert second[:4] == ["4", "", "failed", "too long"]
    assert (writer.ok, writer.failed) == (1, 1)
    assert spreadsheet_safe("plain") == "plain"


def test_svg_label_is_text_never_markup(tmp_path: Path) -> None:
    content = render_svg(
        qr_modules("https://e.x/1", ErrorCorrection.M),
        4,
        4,
        BLACK,
        WHITE,
        SCRIPT_LABEL + "\x00\x07",
    )
    root = ElementTree.fromstring(content)
    elements = list(root.iter())
    assert not [e for e in elements if e.tag.rsplit("}", 1)[-1] == "script"]
    assert not [name for e in elements for name in e.attrib if name.lower().startswith("on")]
    [text] = [e for e in elements if e.tag.endswith("text")]
    assert text.text is not None and text.text.startswith(SCRIPT_LABEL)
    assert decode_svg(content, tmp_path) == ["https://e.x/1"]


@pytest.mark.parametrize(
    ("dark", "light"),
    [(BLACK, WHITE), ((26, 35, 126, 255), (255, 248, 225, 255)), (BLACK, (255, 255, 255, 0))],
)
def test_png_is_one_bit_and_decodes(dark: tuple[int, ...], light: tuple[int, ...]) -> None:
    from PIL import Image

    content = render_png(qr_modules("ünïcode ✓ 日本", ErrorCorrection.M), 6, 4, dark, light)  # type: ignore[arg-type]
    with Image.open(io.BytesIO(content)) as image:
        assert image.mode == "P" and image.size == ((25 + 8) * 6,) * 2
        assert image.info.get("transparency") is None or light[3] == 0
    assert decode_png(content) == ["ünïcode ✓ 日本"]


def write_csv(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "items.csv"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_csv_rows_become_items_and_bad_rows_fail_alone(tmp_path: Path) -> None:
    text = "\ufeffName,DATA,label,extra\r\nfirst,https://e.x/1,Row A,z\r\n\r\n,,no data,\r\n"
    text += f"long,{'9' * 8000},,\r\n" + 'last,"quoted, data"\r\n'
    items = list(csv_items(write_csv(tmp_path, text), options()))
    assert [item.index for item in items] == [0, 1, 2, 3]
    assert (items[0].name, items[0].data, items[0].label) == ("first", "https://e.x/1", "Row A")
    assert items[0].fault is None and items[3].data == "quoted, data"
    assert items[1].fault == "data is empty"
    assert items[2].fault is not None and "no QR code holds more" in items[2].fault


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the CSV is empty"),
        ("name,label\nx,y\n", "line 1 must be a header"),
        (b"data\nok\n\xff\xfe\n", "is not UTF-8"),
        ('data\n"never closed\n', "line"),
        ("data\n" + "x" * 200_000 + "\n", "line 2: field larger than field limit"),
        ("data\n" + ",".join(["a"] * 100) + "\n", "line 2 has 100 columns"),
    ],
)
def test_an_unusable_csv_names_the_line(tmp_path: Path, text: str | bytes, message: str) -> None:
    with pytest.raises(BatchInputError, match=message):
        list(csv_items(write_csv(tmp_path, text), options()))


def test_a_csv_over_the_row_limit_names_the_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "data\n" + "x\n" * 11)
    with pytest.raises(BatchInputError, match="line 12: the CSV has more than 10 rows"):
        list(csv_items(path, options(), max_rows=10))


def test_item_overrides_win_over_the_batch() -> None:
    request = QrBatchOptions(
        items=[QrBatchItem(data="a"), QrBatchItem(data="b", error_correction="H", dark="#FF0000")],
        error_correction=ErrorCorrection.Q,
    )
    first, second = inline_items(request)
    assert (first.error_correction, first.dark) == ("Q", "#000000")
    assert (second.error_correction, second.dark) == ("H", "#FF0000")


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_a_bad_item_fails_alone_and_every_other_code_decodes(fmt: str, tmp_path: Path) -> None:
    items = [
        {"data": "https://example.com/1", "name": "../../one", "label": SCRIPT_LABEL},
        {"data": "é" * 1300, "error_correction": "H"},  # over level H's 1272 bytes
        {"data": "ünïcode ✓ 日本", "name": "/etc/passwd", "light": "#FFFFFF00"},
        {"data": "31415926535897932384626433832795", "error_correction": "L"},
    ]
    results = drawn(items, fmt)
    assert [r.error is None for r in results] == [True, False, True, True]
    assert "at level H holds at most 1272" in (results[1].error or "")
    for result, item in zip(results, items, strict=True):
        if result.error is None:
            assert result.file is not None and result.content is not None
            assert ARCHIVE_NAME.fullmatch(result.file)
            assert decode(result.file, result.content, tmp_path) == [item["data"]]


def test_a_png_over_the_pixel_limit_fails_alone() -> None:
    results = drawn([{"data": "a"}, {"data": "b" * 2000}], "png", scale=50)
    assert results[0].error is None
    assert "over the limit of 4,000,000 pixels" in (results[1].error or "")


def test_the_archive_holds_every_good_item_and_a_manifest(tmp_path: Path) -> None:
    items: list[dict[str, object]] = [
        {"data": f"item {i}", "name": n} for i, n in enumerate(HOSTILE_NAMES)
    ]
    items.append({"data": "x" * 3000})  # over level M
    path = tmp_path / "codes.zip"
    with QrArchive(path) as archive:
        for result in drawn(items):
            archive.add(result)
    with zipfile.ZipFile(path) as written:
        assert written.testzip() is None
        names = written.namelist()
        assert names[-1] == MANIFEST_NAME
        assert all(ARCHIVE_NAME.fullmatch(name) for name in names[:-1])
        assert len(names) - 1 == len(HOSTILE_NAMES)
        rows = list(csv.DictReader(io.StringIO(written.read(MANIFEST_NAME).decode())))
        for row, name in zip(rows, names[:-1], strict=False):
            assert row["file"] == name and row["status"] == "ok"
            assert decode_png(written.read(name)) == [row["data"]]
    assert rows[-1]["status"] == "failed" and rows[-1]["file"] == ""
    assert (archive.manifest.ok, archive.manifest.failed) == (len(HOSTILE_NAMES), 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.zip"]


def test_a_discarded_archive_leaves_no_manifest_behind(tmp_path: Path) -> None:
    path = tmp_path / "codes.zip"
    with pytest.raises(RuntimeError), QrArchive(path) as archive:
        archive.add(drawn([{"data": "a"}])[0])
        raise RuntimeError("cancelled")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.zip"]


def test_batch_items_cross_the_pool_boundary() -> None:
    import pickle

    item = BatchItem(0, "a", None, None, ErrorCorrection.M, "#000000", "#FFFFFF")
    assert pickle.loads(pickle.dumps(item)) == item
    draw = DrawOptions(format=BatchFormat.svg, scale=1, border=0, max_png_pixels=1)
    assert pickle.loads(pickle.dumps(draw)) == draw


def test_an_archive_whose_manifest_cannot_join_leaves_no_spool_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    path = tmp_path / "codes.zip"
    archive = QrArchive(path)
    archive.add(drawn([{"data": "a"}])[0])
    monkeypatch.setattr(archive._zip, "add_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        archive.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.zip"]
    assert archive._zip._out.closed
