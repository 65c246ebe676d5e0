"""Page ranges as people write them: ``1-3,5,7-`` (pages 1 to 3, page 5, page 7 to the end).

Parsing knows the syntax (a request field's validator uses it: a typo is a 422 before any
file is opened); :func:`out_of_range` knows a file's page count (the submit check and the
task use it: page 9 of an 8-page file is a 422 naming the field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RANGES = 10_000
"""More comma-separated parts than any PDF this server takes has pages."""
_PART = re.compile(r"\s*(\d{1,7})\s*(?:(-)\s*(\d{1,7})?\s*)?")


@dataclass(frozen=True)
class PageRange:
    """Pages ``first`` to ``last`` (1-based, inclusive); ``last`` None: to the end."""

    first: int
    last: int | None

    def indices(self, page_count: int) -> range:
        """The 0-based page indices of this range in a file of ``page_count`` pages."""
        last = page_count if self.last is None else self.last
        return range(self.first - 1, last)

    def __str__(self) -> str:
        if self.last == self.first:
            return str(self.first)
        return f"{self.first}-{'' if self.last is None else self.last}"


def parse_ranges(text: str) -> tuple[PageRange, ...]:
    """The ranges in ``text``; raises ValueError saying which part is wrong."""
    if not text.strip():
        raise ValueError("give at least one page or range, e.g. 1-3,5,7-")
    parts = text.split(",")
    if len(parts) > MAX_RANGES:
        raise ValueError(f"at most {MAX_RANGES:,} ranges")
    ranges = []
    for part in parts:
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(
                f"{part.strip()!r} is not a page or range (forms: 5, 1-3, 7- for 7 to the end)"
            )
        first = int(match[1])
        last = first if match[2] is None else (None if match[3] is None else int(match[3]))
        if first < 1:
            raise ValueError(f"{part.strip()!r}: pages are numbered from 1")
        if last is not None and last < first:
            raise ValueError(f"{part.strip()!r} ends before it starts")
        ranges.append(PageRange(first, last))
    return tuple(ranges)


def out_of_range(ranges: tuple[PageRange, ...], page_count: int) -> str | None:
    """Why ``ranges`` do not fit a file of ``page_count`` pages, or None when they do."""
    for page_range in ranges:
        highest = page_range.first if page_range.last is None else page_range.last
        if highest > page_count:
            pages = "page" if page_count == 1 else "pages"
            return f"{page_range} is past the end: the file has {page_count} {pages}"
    return None


def selected_pages(ranges: tuple[PageRange, ...] | None, page_count: int) -> list[int]:
    """The 0-based indices ``ranges`` name, each once, in page order; None: every page."""
    if ranges is None:
        return list(range(page_count))
    chosen: set[int] = set()
    for page_range in ranges:
        chosen.update(page_range.indices(page_count))
    return sorted(chosen)
