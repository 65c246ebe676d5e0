"""The retry decision (brokers.retries): pure, so tested directly."""

from __future__ import annotations

import random

import pytest

from brokers.backoff import Backoff
from brokers.contract import JobRecord
from brokers.retries import BACKOFF_BASE_LABEL, BACKOFF_CAP_LABEL, backoff_of, retry_due_at
from schemas.jobs import JobError

FLAKY = JobError(type="flaky", message="again", retryable=True)
BAD = JobError(type="bad", message="no", retryable=False)


def job(attempts: int, max_attempts: int = 3) -> JobRecord:
    return JobRecord(
        id="j", tenant="t", kind="qr", request={}, created_at=0.0, expires_at=1e12,
        max_attempts=max_attempts, attempts=attempts,
    )  # fmt: skip


def test_the_backoff_comes_from_the_labels_with_defaults() -> None:
    labels = {BACKOFF_BASE_LABEL: 0.5, BACKOFF_CAP_LABEL: "4"}
    assert backoff_of(labels) == Backoff(0.5, 4.0)
    assert backoff_of({}) == Backoff(1.0, 300.0)


@pytest.mark.parametrize("bad", ["soon", None, -1, float("nan"), float("inf"), [1]])
def test_a_bad_backoff_label_falls_back_to_the_default(bad: object) -> None:
    assert backoff_of({BACKOFF_BASE_LABEL: bad}).base_s == 1.0


def test_only_a_retryable_error_with_attempts_left_is_retried() -> None:
    rng = random.Random(7)
    assert retry_due_at(job(1), BAD, {}, 100.0, rng) is None
    assert retry_due_at(job(3), FLAKY, {}, 100.0, rng) is None
    labels = {BACKOFF_BASE_LABEL: 2.0, BACKOFF_CAP_LABEL: 5.0}
    for attempts, ceiling in ((1, 2.0), (2, 4.0), (3, 5.0)):
        due = retry_due_at(job(attempts, max_attempts=9), FLAKY, labels, 100.0, rng)
        assert due is not None and 100.0 <= due <= 100.0 + ceiling
