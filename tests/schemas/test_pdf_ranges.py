"""Page ranges: the syntax people write, checked against a file's pages."""

from __future__ import annotations

import pytest

from schemas.pdf_ranges import PageRange, out_of_range, parse_ranges, selected_pages


def test_pages_ranges_and_open_ends_parse() -> None:
    assert parse_ranges("1-3, 5 ,7-") == (PageRange(1, 3), PageRange(5, 5), PageRange(7, None))
    assert [str(part) for part in parse_ranges("1-3,5,7-")] == ["1-3", "5", "7-"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one page"),
        ("1-3,,5", "'' is not a page or range"),
        ("a-b", "'a-b' is not a page or range"),
        ("0-2", "numbered from 1"),
        ("5-2", "'5-2' ends before it starts"),
        ("-3", "'-3' is not a page or range"),
        ("1.5", "not a page or range"),
    ],
)
def test_malformed_ranges_say_which_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ranges(text)


def test_ranges_past_the_end_are_named() -> None:
    assert out_of_range(parse_ranges("1-3,7-"), 7) is None
    assert out_of_range(parse_ranges("1-3,8-"), 7) == "8- is past the end: the file has 7 pages"
    assert out_of_range(parse_ranges("2-9"), 1) == "2-9 is past the end: the file has 1 page"


def test_selected_pages_are_each_once_in_order() -> None:
    assert selected_pages(parse_ranges("5,1-3,2,4-"), 6) == [0, 1, 2, 3, 4, 5]
    assert selected_pages(parse_ranges("3"), 6) == [2]
    assert selected_pages(None, 3) == [0, 1, 2]
