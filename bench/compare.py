"""Drain and pickup of two checkouts, interleaved in one invocation, with their ratios.

    .venv/bin/python -m bench.compare --before ../offload-before [--rounds 3]

``--before`` is another checkout of this repository (e.g. ``git worktree add --detach
../offload-before <commit>`` and ``./dev check`` there once, for its .venv). Each round runs
``python -m bench.run --only drain --only pickup --only redis-drain --only redis-pickup``
first in one checkout, then in the other (the order alternates), each with its own
interpreter, so both meet the same machine load. Medians over the rounds are printed with
after/before ratios. This is not a pytest test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import say

PARTS = ("drain", "pickup", "redis-drain", "redis-pickup")
FIGURES: tuple[tuple[str, tuple[Any, ...], bool], ...] = (
    # (label, path into bench.run's JSON, higher is better)
    ("SQLite drain, jobs/s", ("drain", "drain_jobs_s"), True),
    ("SQLite worker CPU, us/job", ("drain", "worker_cpu_us_per_job"), False),
    ("SQLite pickup p50, ms", ("pickup", "kick", "50"), False),
    ("SQLite pickup p99, ms", ("pickup", "kick", "99"), False),
    ("Redis drain, jobs/s", ("redis_drain", "offload_1", "drain_jobs_s"), True),
    ("Redis worker CPU, us/job", ("redis_drain", "offload_1", "worker_cpu_us_per_job"), False),
    ("Redis raw TaskiQ drain, jobs/s", ("redis_drain", "raw", "drain_jobs_s"), True),
    ("Redis pickup p50, ms", ("redis_pickup", "offload", "run", "50"), False),
    ("Redis pickup p99, ms", ("redis_pickup", "offload", "run", "99"), False),
)


def run_once(checkout: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    python = checkout / ".venv" / "bin" / "python"
    only = [arg for part in PARTS for arg in ("--only", part)]
    command = [str(python), "-m", "bench.run", *only, "--redis-processes", "0", *extra]
    subprocess.run([*command, "--json", str(out)], cwd=checkout, check=True)
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def figure(results: dict[str, Any], path: tuple[Any, ...]) -> float | None:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more bench.run arguments, after --")
    args = parser.parse_args(argv)
    after = Path(__file__).resolve().parent.parent
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="offload-compare-") as scratch:
        for round_number in range(args.rounds):
            order = [("before", args.before), ("after", after)]
            if round_number % 2:
                order.reverse()
            for name, checkout in order:
                say(f"\n=== round {round_number + 1}: {name} ({checkout})")
                out = Path(scratch) / f"{name}-{round_number}.json"
                runs[name].append(run_once(checkout.resolve(), out, args.extra))
    say(f"\nMedians of {args.rounds} interleaved rounds (after = {after}):")
    say(f"{'figure':<34} {'before':>10} {'after':>10} {'after/before':>13}")
    for label, path, _higher in FIGURES:
        values = {}
        for name, results in runs.items():
            found = [v for v in (figure(r, path) for r in results) if v is not None]
            values[name] = statistics.median(found) if found else None
        before, now = values["before"], values["after"]
        ratio = f"{now / before:.2f}" if before and now else "-"
        shown = [f"{v:,.2f}" if v is not None else "-" for v in (before, now)]
        say(f"{label:<34} {shown[0]:>10} {shown[1]:>10} {ratio:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
