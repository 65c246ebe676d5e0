"""The QrOptions contract: defaults, limits and where validation errors point."""

import re
import time
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas.qr import ErrorCorrection, QrFormat, QrOptions
from service.settings import Settings
from tasks.qr_limits import check_qr_options

MAX_PIXELS = 4_000_000

# ISO/IEC 18004 capacities of a version 40 symbol.
BYTE_CAPACITY = {"L": 2953, "M": 2331, "Q": 1663, "H": 1273}
NUMERIC_CAPACITY = {"L": 7089, "M": 5596, "Q": 3993, "H": 3057}
ALPHANUMERIC_CAPACITY = {"L": 4296, "M": 3391, "Q": 2420, "H": 1852}
# Text with a non-ASCII character is UTF-8 behind a 12-bit ECI header, which costs a byte.
UTF8_CAPACITY = {level: capacity - 1 for level, capacity in BYTE_CAPACITY.items()}


def errors_of(max_png_pixels: int = MAX_PIXELS, **fields: Any) -> list[dict[str, Any]]:
    """What parsing ``fields`` and then checking that they fit in a QR code refuse."""
    with pytest.raises(ValidationError) as raised:
        check_qr_options(QrOptions(**fields), max_png_pixels=max_png_pixels)
    return [dict(error) for error in raised.value.errors()]


def fits(max_png_pixels: int = MAX_PIXELS, **fields: Any) -> QrOptions:
    options = QrOptions(**fields)
    check_qr_options(options, max_png_pixels=max_png_pixels)
    return options


def test_defaults() -> None:
    options = QrOptions(data="hello")
    assert options.model_dump() == {
        "data": "hello",
        "format": QrFormat.png,
        "error_correction": ErrorCorrection.M,
        "scale": 10,
        "border": 4,
        "dark": "#000000",
        "light": "#FFFFFF",
    }


def test_enums_accept_their_json_values() -> None:
    options = QrOptions.model_validate_json(
        '{"data": "x", "format": "pdf", "error_correction": "H", "dark": "#1a237e80"}'
    )
    assert options.format is QrFormat.pdf
    assert options.error_correction is ErrorCorrection.H
    assert options.dark == "#1a237e80"


@pytest.mark.parametrize("level", list(ErrorCorrection))
@pytest.mark.parametrize(
    ("unit", "capacities"),
    [("a", BYTE_CAPACITY), ("7", NUMERIC_CAPACITY), ("Q", ALPHANUMERIC_CAPACITY)],
    ids=["byte", "numeric", "alphanumeric"],
)
def test_capacity_boundary(level: ErrorCorrection, unit: str, capacities: dict[str, int]) -> None:
    limit = capacities[level]
    assert fits(data=unit * limit, error_correction=level).data == unit * limit
    [error] = errors_of(data=unit * (limit + 1), error_correction=level)
    assert error["loc"] == ("data",)
    assert error["type"] == "qr_capacity"
    assert f"{limit + 1} " in error["msg"]
    if level is ErrorCorrection.L and unit != "Q":
        # No level holds more than L: parsing refuses it, before any capacity fit.
        assert f"no QR code holds more than {limit} " in error["msg"]
    else:
        assert f"at level {level.value} holds at most {limit} " in error["msg"]


def utf8_message(size: int, level: str) -> str:
    return (
        f"data is {size} bytes in UTF-8; a QR code at level {level} holds at most "
        f"{UTF8_CAPACITY[level]} bytes of text with non-ASCII characters"
    )


def byte_mode_message(size: int) -> str:
    return (
        f"data has {size} bytes (UTF-8) of characters other than 0-9, A-Z, space and "
        "$%*+-./:; no QR code holds more than 2953 such bytes (at error_correction L)"
    )


def refusal(text: str, level: str) -> str:
    """Why non-ASCII ``text`` is refused: by parsing when no QR code holds its bytes outside
    the alphanumeric set (one byte each, in byte mode), else by the fit at ``level``."""
    byte_mode = len(re.sub(r"[0-9A-Z $%*+\-./:]", "", text).encode())
    if byte_mode > BYTE_CAPACITY["L"]:
        return byte_mode_message(byte_mode)
    return utf8_message(len(text.encode()), level)


@pytest.mark.parametrize(
    ("data", "level", "message"),
    [
        ("a" * 2000, "H", "data is 2000 bytes; a QR code at level H holds at most 1273 bytes"),
        ("ü" * 1477, "L", byte_mode_message(2954)),
        ("ü" * 1400, "M", utf8_message(2800, "M")),
        ("🎉" * 319, "H", utf8_message(1276, "H")),
    ],
)
def test_capacity_counts_utf8_bytes(data: str, level: str, message: str) -> None:
    [error] = errors_of(data=data, error_correction=level)
    assert error["loc"] == ("data",)
    assert error["msg"] == message


def test_largest_utf8_payload_passes() -> None:
    assert fits(data="ü" * 1476, error_correction="L")
    [error] = errors_of(data="ü" * 1476 + "a", error_correction="L")
    assert error["msg"] == utf8_message(2953, "L")


@pytest.mark.parametrize("level", list(ErrorCorrection))
@pytest.mark.parametrize("unit", ["ü", "你", "🎉", "é \u2013 Ελ 日本 "], ids=["2", "3", "4", "mix"])
def test_non_ascii_capacity_boundary(level: ErrorCorrection, unit: str) -> None:
    limit = UTF8_CAPACITY[level]
    text = (unit * limit).encode()[:limit].decode(errors="ignore")
    largest = text + "a" * (limit - len(text.encode()))
    assert len(largest.encode()) == limit
    assert fits(data=largest, error_correction=level).data == largest
    for longer in (largest + "a", largest + unit[0]):
        [error] = errors_of(data=longer, error_correction=level)
        assert error["loc"] == ("data",)
        assert error["type"] == "qr_capacity"
        assert error["msg"] == refusal(longer, level.value)


def test_one_non_ascii_character_costs_the_eci_header() -> None:
    ascii_text = "a" * BYTE_CAPACITY["H"]
    assert fits(data=ascii_text, error_correction="H")
    [error] = errors_of(data="é" + ascii_text[2:], error_correction="H")
    assert error["msg"] == utf8_message(BYTE_CAPACITY["H"], "H")


@pytest.mark.parametrize("level", list(ErrorCorrection))
@pytest.mark.parametrize(
    "text",
    [
        "Order 12345678901234567890123 SHIPPED TO BERLIN, DE; ünïcödé ✓ ",
        "Grüße aus Köln, 你好, Ελληνικά, café crème 🎉 ",
    ],
    ids=["mixed", "prose"],
)
def test_any_text_within_the_utf8_capacity_fits(level: ErrorCorrection, text: str) -> None:
    data = (text * 100).encode()[: UTF8_CAPACITY[level]].decode(errors="ignore")
    assert fits(data=data, error_correction=level)


def longer_than_any_message(length: int) -> str:
    return (
        f"data is {length} characters; no QR code holds more than 7089 "
        "(digits only, at error_correction L)"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("7" * 7090, longer_than_any_message(7090)),
        ("A" * 1_040_000, longer_than_any_message(1_040_000)),
        ("é" * 7090, longer_than_any_message(7090)),
        ("a" * 2954, byte_mode_message(2954)),
        ("a" * 1_000 + "1" * 5_000 + "ü" * 977, byte_mode_message(2954)),
        ("🎉" * 739, byte_mode_message(2956)),
    ],
    ids=["digits", "1-MB", "non-ASCII", "bytes", "mixed", "emoji"],
)
def test_data_no_qr_code_can_hold_is_refused_by_length(data: str, message: str) -> None:
    """Parsing alone refuses it, at every level: no capacity fit is needed to know."""
    for level in ErrorCorrection:
        with pytest.raises(ValidationError) as raised:
            QrOptions(data=data, error_correction=level)
        [error] = raised.value.errors()
        assert error["loc"] == ("data",)
        assert error["type"] == "qr_capacity"
        assert error["msg"] == message


def test_the_longest_data_any_qr_code_holds_parses() -> None:
    assert fits(data="7" * 7089, error_correction="L")
    assert fits(data="a" * 2953, error_correction="L")
    assert QrOptions(data="A" * 7089, error_correction="H")
    [error] = errors_of(data="A" * 7089, error_correction="H")
    assert error["msg"] == (
        "data is 7089 characters; a QR code at level H holds at most 1852 alphanumeric characters"
    )


def test_refusing_data_by_length_costs_less_than_one_capacity_fit() -> None:
    """A megabyte of data is refused before the fit, whose cost grows with the data (the fit
    of this megabyte took 2.7 s). CPU time of this thread, compared with itself: no clock."""
    largest = QrOptions(data="A" * 4296, error_correction="L")
    check_qr_options(largest, max_png_pixels=MAX_PIXELS)
    started = time.thread_time()
    check_qr_options(largest, max_png_pixels=MAX_PIXELS)
    one_fit = time.thread_time() - started
    started = time.thread_time()
    with pytest.raises(ValidationError):
        QrOptions(data="A" * 1_040_000)
    assert time.thread_time() - started < one_fit


def test_length_error_is_located_at_data_when_nested() -> None:
    class Job(BaseModel):
        options: QrOptions

    with pytest.raises(ValidationError) as raised:
        Job.model_validate({"options": {"data": "a" * 7090, "error_correction": "H"}})
    [error] = raised.value.errors()
    assert error["loc"] == ("options", "data")


@pytest.mark.parametrize(
    ("fields", "loc", "error_type"),
    [
        ({"data": ""}, ("data",), "string_too_short"),
        ({"data": 42}, ("data",), "string_type"),
        ({"format": "gif"}, ("format",), "enum"),
        ({"format": "PNG"}, ("format",), "enum"),
        ({"error_correction": "X"}, ("error_correction",), "enum"),
        ({"error_correction": "l"}, ("error_correction",), "enum"),
        ({"scale": 0}, ("scale",), "greater_than_equal"),
        ({"scale": 51}, ("scale",), "less_than_equal"),
        ({"scale": 2.5}, ("scale",), "int_from_float"),
        ({"border": -1}, ("border",), "greater_than_equal"),
        ({"border": 21}, ("border",), "less_than_equal"),
        ({"dark": "red"}, ("dark",), "string_pattern_mismatch"),
        ({"dark": "#12345"}, ("dark",), "string_pattern_mismatch"),
        ({"dark": "#1234567"}, ("dark",), "string_pattern_mismatch"),
        ({"dark": "#GGGGGG"}, ("dark",), "string_pattern_mismatch"),
        ({"light": "FFFFFF"}, ("light",), "string_pattern_mismatch"),
        ({"light": "#FFFFFF0"}, ("light",), "string_pattern_mismatch"),
        ({"light": "#FFFFFF000"}, ("light",), "string_pattern_mismatch"),
        ({"colour": "#000000"}, ("colour",), "extra_forbidden"),
    ],
)
def test_bad_field_is_refused_where_it_is(
    fields: dict[str, Any], loc: tuple[str, ...], error_type: str
) -> None:
    [error] = errors_of(**{"data": "hello", **fields})
    assert error["loc"] == loc
    assert error["type"] == error_type


def test_missing_data_is_refused() -> None:
    [error] = errors_of()
    assert error["loc"] == ("data",)
    assert error["type"] == "missing"


VERSION_40 = "a" * BYTE_CAPACITY["L"]
"""At level L: a version 40 code, 177 modules a side without its border."""


def too_large(side: int, limit: int = MAX_PIXELS) -> str:
    return f"a {side}x{side} PNG is over the limit of {limit:,} pixels"


@pytest.mark.parametrize(
    ("scale", "border", "faults"),
    [
        # 2000x2000 is the largest square within 4,000,000 pixels.
        (50, 20, {"scale": "with border 20, scale can be at most 9"}),
        (50, 0, {"scale": "with border 0, scale can be at most 11"}),
        (
            11,
            4,
            {
                "scale": "with border 4, scale can be at most 10",
                "border": "at scale 11, border can be at most 2",
            },
        ),
        (
            10,
            20,
            {
                "scale": "with border 20, scale can be at most 9",
                "border": "at scale 10, border can be at most 11",
            },
        ),
    ],
)
def test_png_over_the_pixel_limit_names_each_field_that_alone_would_fix_it(
    scale: int, border: int, faults: dict[str, str]
) -> None:
    errors = errors_of(data=VERSION_40, error_correction="L", scale=scale, border=border)
    side = (177 + 2 * border) * scale
    assert {error["loc"][0]: error["msg"] for error in errors} == {
        field: f"{too_large(side)}; {advice}" for field, advice in faults.items()
    }
    assert {error["type"] for error in errors} == {"qr_too_large"}


@pytest.mark.parametrize(("scale", "border"), [(10, 4), (9, 20), (11, 2)])
def test_largest_allowed_pngs_pass(scale: int, border: int) -> None:
    assert ((177 + 2 * border) * scale) ** 2 <= MAX_PIXELS
    assert fits(data=VERSION_40, error_correction="L", scale=scale, border=border)


def test_the_pixel_limit_is_the_one_given() -> None:
    assert fits(max_png_pixels=40_000_000, data=VERSION_40, error_correction="L", scale=34)
    [error] = errors_of(max_png_pixels=1_000_000, data=VERSION_40, error_correction="L")
    assert error["msg"] == f"{too_large(1850, 1_000_000)}; with border 4, scale can be at most 5"


@pytest.mark.parametrize("fmt", [QrFormat.svg, QrFormat.pdf])
def test_vector_formats_have_no_pixel_limit(fmt: QrFormat) -> None:
    """Their size and the work to draw them grow with the modules, not with scale or border."""
    assert fits(data=VERSION_40, error_correction="L", scale=50, border=20, format=fmt)


def test_small_code_may_use_the_largest_scale() -> None:
    assert MAX_PIXELS >= ((21 + 2 * 4) * 50) ** 2
    assert fits(data="hi", scale=50, border=4)


def test_the_documented_limit_is_the_default_setting() -> None:
    description = QrOptions.model_fields["scale"].description or ""
    assert Settings.model_fields["qr_max_pixels"].default == MAX_PIXELS
    assert f"{MAX_PIXELS:,} pixels by default" in description


def test_json_schema_documents_every_field() -> None:
    schema = QrOptions.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["data"]
    for name, field in schema["properties"].items():
        assert field.get("description"), name
    assert schema["properties"]["scale"]["minimum"] == 1
    assert schema["properties"]["scale"]["maximum"] == 50
    assert schema["properties"]["dark"]["pattern"] == "^#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$"
    [example, *_] = schema["examples"]
    assert QrOptions.model_validate(example)
    for other in schema["examples"]:
        assert QrOptions.model_validate(other)
