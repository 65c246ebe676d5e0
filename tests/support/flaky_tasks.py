"""Tasks that fail retryably once, then succeed, for tests with real processes and restarts:
``taskiq worker brokers:broker tasks tests.support.flaky_tasks``.

A marker file (its path in the request) remembers the failure across processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from brokers import broker
from brokers.lifecycle import JobFailure
from brokers.retries import BACKOFF_BASE_LABEL, BACKOFF_CAP_LABEL

FLAKY_TASK = "tests.flaky.two_seconds"
SLOW_FLAKY_TASK = "tests.flaky.six_seconds"


class FirstRunFails(JobFailure):
    error_type = "first_run_fails"
    retryable = True


def _run(request: dict[str, Any]) -> dict[str, Any]:
    marker = Path(request["marker"])
    if not marker.exists():
        marker.write_text("failed once")
        raise FirstRunFails("the first run fails")
    return {"data": {"second": True}, "files": []}


@broker.task(task_name=FLAKY_TASK, **{BACKOFF_BASE_LABEL: 2.0, BACKOFF_CAP_LABEL: 2.0})
async def flaky_in_seconds(request: dict[str, Any]) -> dict[str, Any]:
    """Waits up to 2 s before its second run (exactly 2 s with the jitter pinned)."""
    return _run(request)


@broker.task(task_name=SLOW_FLAKY_TASK, **{BACKOFF_BASE_LABEL: 6.0, BACKOFF_CAP_LABEL: 6.0})
async def slow_flaky(request: dict[str, Any]) -> dict[str, Any]:
    """Waits up to 6 s before its second run."""
    return _run(request)
