"""``offload worker``, exactly, plus the benchmark's task module.

``offload worker`` imports only ``tasks``, and the benchmark's no-op jobs live in
``bench/noop_tasks.py``. This runs :func:`service.cli.main` with ``worker`` and its arguments,
so the settings, Offload's logging set-up (``OFFLOAD_LOG_LEVEL``, TaskiQ's per-message line
muted) and every ``WorkerArgs`` field are the product's own; the only change is that
``bench.noop_tasks`` (and any modules named in ``BENCH_WORKER_MODULES``) is appended to the
modules the worker processes import::

    OFFLOAD_BROKER_URL=redis://127.0.0.1:6390/0 python -m bench.offload_worker --processes 2
"""

from __future__ import annotations

import os
import sys
from typing import Any

import taskiq.cli.worker.run as taskiq_run

from service import cli

BENCH_MODULE = "bench.noop_tasks"
EXTRA_MODULES = "BENCH_WORKER_MODULES"
"""Comma-separated further modules to import (the benchmark's ``--worker-module``)."""


def main(argv: list[str] | None = None) -> int:
    run_worker = taskiq_run.run_worker

    def with_bench_tasks(args: Any) -> int | None:
        extra = [m for m in os.environ.get(EXTRA_MODULES, "").split(",") if m]
        args.modules = [*args.modules, BENCH_MODULE, *extra]
        return run_worker(args)

    # service.cli imports run_worker when the command runs, so it gets this one.
    taskiq_run.run_worker = with_bench_tasks
    return cli.main(["worker", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
