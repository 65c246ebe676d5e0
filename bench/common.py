"""Helpers shared by the benchmark's parts: processes, CPU time, waiting, wrk, profiles."""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
NO_SOCKET_ERRORS = "connect 0, read 0, write 0, timeout 0"


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child: no broker URL (the embedded default) unless
    ``extra`` names one, and ``OFFLOAD_DATA_DIR`` pointed at the part's own directory."""
    env = {k: v for k, v in os.environ.items() if k != "OFFLOAD_BROKER_URL"}
    env["OFFLOAD_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def children_cpu(pid: int) -> float:
    """CPU seconds of all direct children of ``pid`` (the worker processes of a manager)."""
    return sum(cpu_seconds(child) or 0.0 for child in children_of(pid))


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the process we started (its own session), then SIGKILL its group if needed."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def spawn(
    argv: list[str], data_dir: Path, log_name: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = (data_dir / log_name).open("wb")
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=child_env(data_dir, env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def offload_worker_argv(processes: int) -> list[str]:
    """``offload worker --processes N`` plus the bench task module: bench/offload_worker.py."""
    return [PYTHON, "-m", "bench.offload_worker", "--processes", str(processes)]


def wait_until_done(
    count: Callable[[], int],
    expected: int,
    worker: subprocess.Popen[bytes],
    timeout: float,
    also_pids: dict[str, int] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Poll ``count()`` until it reaches ``expected``; return the time that was seen and the
    CPU µs per job, between the first and the last job seen done, of the worker's children
    (all worker processes) and of each process in ``also_pids`` (e.g. redis-server)."""
    deadline = time.monotonic() + timeout
    first: tuple[int, float, dict[str, float]] | None = None
    also = also_pids or {}
    while True:
        done = count()
        if done and first is None and children_of(worker.pid):
            others = {name: cpu_seconds(pid) or 0.0 for name, pid in also.items()}
            first = (done, children_cpu(worker.pid), others)
        if done >= expected:
            finished = time.time()
            cpu: dict[str, Any] = {}
            if first is not None and done > first[0]:
                jobs = done - first[0]
                cpu["worker_cpu_us_per_job"] = 1e6 * (children_cpu(worker.pid) - first[1]) / jobs
                for name, pid in also.items():
                    spent = (cpu_seconds(pid) or 0.0) - first[2][name]
                    cpu[f"{name}_cpu_us_per_job"] = 1e6 * spent / jobs
            return finished, cpu
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode}; see its log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{expected} jobs done in {timeout:.0f}s")
        time.sleep(0.05)


# --------------------------------------------------------------------------- py-spy


def attach_py_spy(py_spy: str, worker: subprocess.Popen[bytes], out: Path) -> Any:
    """Attach py-spy to the worker child as soon as it exists (it samples, non-blocking)."""
    deadline = time.monotonic() + 30
    while not children_of(worker.pid):
        if time.monotonic() > deadline or worker.poll() is not None:
            raise RuntimeError("the worker child did not start")
        time.sleep(0.01)
    child = children_of(worker.pid)[0]
    argv = [py_spy, "record", "-p", str(child), "-r", "250", "--nonblocking"]
    argv += ["-f", "raw", "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_py_spy(spy: Any) -> None:
    spy.send_signal(signal.SIGINT)
    spy.wait(30)


PROFILE_SKIP = (
    "multiprocessing", "taskiq/cli", "taskiq/__main__", "<module>", "asyncio/", "runpy",
    "bench/offload_worker", "service/cli",
)  # fmt: skip


def summarize_profile(path: Path, top: int = 30) -> dict[str, Any] | None:
    """Share of samples per function from py-spy's raw (collapsed) stacks: inclusive, and
    own (the function was the innermost frame). Start-up (imports, app creation) is left
    out, and so are the frames every sample shares."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "start_listen" not in stack or "_find_and_load" in stack or "startup" in stack:
            continue
        total += int(count)
        frames = [re.sub(r" \((.*?):\d+\)$", r" (\1)", frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += int(count)
        own[frames[-1]] += int(count)
    if not total:
        return None
    rows = [
        (100 * n / total, 100 * own[frame] / total, frame)
        for frame, n in inclusive.most_common()
        if not any(s in frame for s in PROFILE_SKIP)
    ]
    leaves = [(100 * n / total, frame) for frame, n in own.most_common(top)]
    return {"samples": total, "rows": rows[:top], "own": leaves}


def show_profile(profile: dict[str, Any] | None, own: int = 12) -> None:
    if not profile:
        return
    say(f"    py-spy, {profile['samples']} samples; inclusive share (own share):")
    for share, mine, frame in profile["rows"]:
        say(f"    {share:5.1f}% ({mine:4.1f}%)  {frame}")
    say("    innermost frames (own time, all frames):")
    for share, frame in profile["own"][:own]:
        say(f"    {share:5.1f}%  {frame}")


# --------------------------------------------------------------------------- http


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not answer /healthz")


def run_wrk(url: str, connections: int, threads: int, duration: float) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        reply = subprocess.run(
            [PYTHON, "-m", "bench.http_load", url, "--connections", str(connections),
             "--duration", str(duration)],
            cwd=REPO, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return dict(json.loads(reply.stdout.strip().splitlines()[-1]))
    argv = ["wrk", "-t", str(threads), "-c", str(connections)]
    argv += ["-d", f"{duration:g}s", "--latency", "-s", str(BENCH / "post_qr.lua"), url]
    text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rps is None:
        raise RuntimeError(f"could not read wrk's output:\n{text}")
    total = re.search(r"(\d+) requests in", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", text, re.M))
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
        "p50": latency.get("50", "?"),
        "p99": latency.get("99", "?"),
    }


def measure_server(
    process: subprocess.Popen[bytes], port: int, connections: int, threads: int,
    warmup: float, duration: float,
) -> dict[str, Any]:  # fmt: skip
    """Warm a started server up, then measure req/s and its CPU µs per request."""
    wait_healthy(port, process)
    url = f"http://127.0.0.1:{port}/v1/jobs/qr"
    run_wrk(url, connections, threads, warmup)
    cpu_before = cpu_seconds(process.pid) or 0.0
    measured = run_wrk(url, connections, threads, duration)
    cpu = (cpu_seconds(process.pid) or 0.0) - cpu_before
    if measured.get("requests"):
        measured["server_cpu_us_per_req"] = 1e6 * cpu / measured["requests"]
    return measured


def http_detail(measured: dict[str, Any]) -> str:
    parts = []
    if "server_cpu_us_per_req" in measured:
        parts.append(f"server CPU {measured['server_cpu_us_per_req']:,.0f} us/req")
    if "p50" in measured:
        parts.append(f"latency p50 {measured['p50']} p99 {measured['p99']}")
    if measured.get("non_2xx"):
        parts.append(f"NON-2XX {measured['non_2xx']}")
    if measured.get("socket_errors", "").strip() not in ("", NO_SOCKET_ERRORS):
        parts.append(f"socket errors {measured['socket_errors']}")
    if "jobs_stored" in measured:
        stored, rendered = measured["jobs_stored"], measured.get("jobs_succeeded")
        parts.append(
            f"jobs stored {stored}" + ("" if rendered is None else f" (rendered {rendered})")
        )
    return "; ".join(parts)
