"""Whether a failed attempt is tried again, and when: pure decisions, no I/O.

A retry is not a TaskiQ feature here (its SmartRetryMiddleware waits linearly, and not at
all without a schedule source): the store records the failure and queues the job's
message again for a due time, in one atomic write (``JobStore.schedule_retry``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from brokers.backoff import Backoff
from brokers.contract import JobRecord
from schemas.jobs import JobError

BACKOFF_BASE_LABEL = "offload_backoff_base_s"
BACKOFF_CAP_LABEL = "offload_backoff_cap_s"
DEFAULT_BACKOFF = Backoff()


def _seconds(labels: Mapping[str, Any], name: str, default: float) -> float:
    """A label's seconds, or the default when it is absent or not a positive number: a bad
    label must not crash the worker or fail the job a second time."""
    try:
        value = float(labels.get(name, default))
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) and value >= 0 else default


def backoff_of(labels: Mapping[str, Any]) -> Backoff:
    """The job's backoff, from its message's labels (set at submit from the kind and job)."""
    base = _seconds(labels, BACKOFF_BASE_LABEL, DEFAULT_BACKOFF.base_s)
    cap = _seconds(labels, BACKOFF_CAP_LABEL, DEFAULT_BACKOFF.cap_s)
    return Backoff(base_s=base, cap_s=cap)


def retry_due_at(
    record: JobRecord,
    error: JobError,
    labels: Mapping[str, Any],
    now: float,
    rng: random.Random | None = None,
) -> float | None:
    """When the job's next attempt may start after its current one (``record.attempts``)
    failed with ``error``; None when it should fail instead: the error says a retry cannot
    help, or the attempts are spent. (A cancel asked meanwhile is the store's to see, in the
    same write: the job then ends cancelled.)"""
    if not error.retryable:
        return None
    if record.attempts >= record.max_attempts:
        return None
    return now + backoff_of(labels).delay(record.attempts, rng)
