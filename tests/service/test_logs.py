"""JSON log lines: one object per line, whatever a library puts on its records."""

from __future__ import annotations

import json
import logging

from service.logs import JsonFormatter

ESCAPE = "\x1b"


def uvicorn_record() -> logging.LogRecord:
    """A record as uvicorn makes them: the plain message plus a coloured copy in ``extra``."""
    return logging.makeLogRecord(
        {
            "name": "uvicorn.error",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
            "args": ("http", "127.0.0.1", 8000),
            "color_message": "Uvicorn running on \x1b[1m%s://%s:%d\x1b[0m (Press CTRL+C to quit)",
        }
    )


def test_json_lines_drop_uvicorns_coloured_copy_of_the_message() -> None:
    line = JsonFormatter().format(uvicorn_record())
    parsed = json.loads(line)
    assert "color_message" not in parsed
    assert parsed["message"] == "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"


def test_json_lines_never_carry_terminal_escapes() -> None:
    record = logging.makeLogRecord(
        {
            "name": "somewhere",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "\x1b[31mred\x1b[0m alert",
            "detail": "\x1b[1mbold\x1b[0m",
            "nested": {"path": ["\x1b[2mdim\x1b[0m"]},
        }
    )
    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    assert ESCAPE not in line and "\\u001b" not in line, line
    assert parsed["message"] == "red alert"
    assert parsed["detail"] == "bold"
    assert parsed["nested"] == {"path": ["dim"]}
