"""Logging: plain text for people, one JSON object per line for collectors."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from service.settings import Settings

# uvicorn puts a copy of each message with terminal colours in `color_message`, for its own
# coloured formatter: the plain message already says the same.
_NOT_FIELDS = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b")


def _plain(value: object) -> object:
    """The value with terminal escapes taken out of every string in it."""
    if isinstance(value, str):
        return _TERMINAL_ESCAPE.sub("", value)
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": _plain(record.getMessage()),
        }
        line.update({k: _plain(v) for k, v in record.__dict__.items() if k not in _NOT_FIELDS})
        if record.exc_info:
            line["exception"] = _plain(self.formatException(record.exc_info))
        return json.dumps(line, default=lambda value: _plain(str(value)))


def configure_logging(settings: Settings) -> None:
    # No format here uses the caller's file, thread or process: skip collecting them
    # (the logging HOWTO's "Optimization" section); a job logs twice, so it adds up.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger("taskiq.receiver.receiver").setLevel(logging.WARNING)
