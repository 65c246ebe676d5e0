"""System-test fixtures: real processes, always cleaned up, their logs shown on failure."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.processes import Processes

PROCESSES = pytest.StashKey[Processes]()


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    """Starts processes on ``tmp_path/data``; kills every process group it started at the end."""
    started = Processes(tmp_path)
    request.node.stash[PROCESSES] = started
    try:
        yield started
    finally:
        started.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach every process log to a failed test's report."""
    report = yield
    started = item.stash.get(PROCESSES, None)
    if started is not None and report.failed and started.started:
        report.sections.append((f"process logs ({report.when})", started.logs()))
    return report
