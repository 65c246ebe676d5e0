"""The QrOptions contract: defaults, limits and where validation errors point."""

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas.qr import MAX_PNG_PIXELS, ErrorCorrection, QrFormat, QrOptions

# ISO/IEC 18004 capacities of a version 40 symbol.
BYTE_CAPACITY = {"L": 2953, "M": 2331, "Q": 1663, "H": 1273}
NUMERIC_CAPACITY = {"L": 7089, "M": 5596, "Q": 3993, "H": 3057}
ALPHANUMERIC_CAPACITY = {"L": 4296, "M": 3391, "Q": 2420, "H": 1852}
# Text with a non-ASCII character is UTF-8 behind a 12-bit ECI header, which costs a byte.
UTF8_CAPACITY = {level: capacity - 1 for level, capacity in BYTE_CAPACITY.items()}


def errors_of(**fields: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as raised:
        QrOptions(**fields)
    return [dict(error) for error in raised.value.errors()]


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
    assert QrOptions(data=unit * limit, error_correction=level).data == unit * limit
    [error] = errors_of(data=unit * (limit + 1), error_correction=level)
    assert error["loc"] == ("data",)
    assert error["type"] == "qr_capacity"
    assert f"{limit + 1} " in error["msg"]
    assert f"at level {level.value} holds at most {limit} " in error["msg"]


def utf8_message(size: int, level: str) -> str:
    return (
        f"data is {size} bytes in UTF-8; a QR code at level {level} holds at most "
        f"{UTF8_CAPACITY[level]} bytes of text with non-ASCII characters"
    )


@pytest.mark.parametrize(
    ("data", "level", "message"),
    [
        ("a" * 3000, "H", "data is 3000 bytes; a QR code at level H holds at most 1273 bytes"),
        ("ü" * 1477, "L", utf8_message(2954, "L")),
        ("🎉" * 319, "H", utf8_message(1276, "H")),
    ],
)
def test_capacity_counts_utf8_bytes(data: str, level: str, message: str) -> None:
    [error] = errors_of(data=data, error_correction=level)
    assert error["loc"] == ("data",)
    assert error["msg"] == message


def test_largest_utf8_payload_passes() -> None:
    assert QrOptions(data="ü" * 1476, error_correction="L")
    [error] = errors_of(data="ü" * 1476 + "a", error_correction="L")
    assert error["msg"] == utf8_message(2953, "L")


@pytest.mark.parametrize("level", list(ErrorCorrection))
@pytest.mark.parametrize("unit", ["ü", "你", "🎉", "é \u2013 Ελ 日本 "], ids=["2", "3", "4", "mix"])
def test_non_ascii_capacity_boundary(level: ErrorCorrection, unit: str) -> None:
    limit = UTF8_CAPACITY[level]
    text = (unit * limit).encode()[:limit].decode(errors="ignore")
    largest = text + "a" * (limit - len(text.encode()))
    assert len(largest.encode()) == limit
    assert QrOptions(data=largest, error_correction=level).data == largest
    for longer in (largest + "a", largest + unit[0]):
        [error] = errors_of(data=longer, error_correction=level)
        assert error["loc"] == ("data",)
        assert error["type"] == "qr_capacity"
        assert error["msg"] == utf8_message(len(longer.encode()), level.value)


def test_one_non_ascii_character_costs_the_eci_header() -> None:
    ascii_text = "a" * BYTE_CAPACITY["H"]
    assert QrOptions(data=ascii_text, error_correction="H")
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
    assert QrOptions(data=data, error_correction=level)


def test_capacity_error_is_located_at_data_when_nested() -> None:
    class Job(BaseModel):
        options: QrOptions

    with pytest.raises(ValidationError) as raised:
        Job.model_validate({"options": {"data": "a" * 1274, "error_correction": "H"}})
    [error] = raised.value.errors()
    assert error["loc"] == ("options", "data")
    assert error["loc"][-1] == "data"


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


@pytest.mark.parametrize(("scale", "border"), [(50, 20), (50, 0), (35, 4)])
def test_huge_png_is_refused_at_scale(scale: int, border: int) -> None:
    data = "a" * BYTE_CAPACITY["L"]
    [error] = errors_of(data=data, error_correction="L", scale=scale, border=border)
    assert error["loc"] == ("scale",)
    assert error["type"] == "qr_too_large"
    side = (177 + 2 * border) * scale
    assert error["msg"].startswith(f"a {side}x{side} PNG exceeds")


def test_largest_allowed_png_passes() -> None:
    data = "a" * BYTE_CAPACITY["L"]
    side = (177 + 2 * 4) * 34
    assert side * side <= MAX_PNG_PIXELS
    assert QrOptions(data=data, error_correction="L", scale=34)


@pytest.mark.parametrize("fmt", [QrFormat.svg, QrFormat.pdf])
def test_vector_formats_have_no_pixel_limit(fmt: QrFormat) -> None:
    data = "a" * BYTE_CAPACITY["L"]
    assert QrOptions(data=data, error_correction="L", scale=50, border=20, format=fmt)


def test_small_code_may_use_the_largest_scale() -> None:
    assert QrOptions(data="hi", scale=50, border=20)


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
