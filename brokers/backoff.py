"""How long a failed attempt waits before the next: exponential, with full jitter, capped."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_s: float = 1.0
    """The cap of the first retry's wait; each later retry doubles it."""
    cap_s: float = 300.0
    """No wait is longer than this."""

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after attempt number ``attempt`` (1 for the first) failed: uniform in
        [0, min(cap, base * 2 ** (attempt - 1))] ("full jitter"), so retries of many jobs
        that failed together spread out instead of arriving together."""
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        return (rng or random).uniform(0.0, ceiling)
