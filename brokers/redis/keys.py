"""Key names of the Redis backend, in one place."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LANE = "interactive"
LANES = (DEFAULT_LANE, "bulk")
"""Read in this order: an interactive job never waits behind bulk work."""


@dataclass(frozen=True)
class Keys:
    prefix: str = "offload"

    @property
    def stream(self) -> str:
        """The interactive lane's stream (the only one before lanes existed)."""
        return f"{self.prefix}:queue"

    def lane_stream(self, lane: str) -> str:
        """One stream per lane; workers read interactive first (see scripts._PRELUDE)."""
        return self.stream if lane == DEFAULT_LANE else f"{self.prefix}:queue:{lane}"

    @property
    def streams(self) -> list[str]:
        return [self.lane_stream(lane) for lane in LANES]

    @property
    def delayed(self) -> str:
        """Ids of jobs (and plain messages) due later, scored by due time; a worker's read
        loop moves the due ones into their lane's stream (scripts.PROMOTE)."""
        return f"{self.prefix}:delayed"

    @property
    def group(self) -> str:
        return f"{self.prefix}:workers"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def index(self, tenant: str, status: str | None = None, kind: str | None = None) -> str:
        """The sorted set of job ids (ordered by id, i.e. by creation) for one listing."""
        key = f"{self.prefix}:idx:{tenant}"
        if status is not None:
            key += f":s:{status}"
        if kind is not None:
            key += f":k:{kind}"
        return key

    @property
    def unfinished(self) -> str:
        """Every job not yet finished (the sweeper walks it); see scripts._PRELUDE."""
        return f"{self.prefix}:open"

    @property
    def events(self) -> str:
        """The pub/sub channel on which scripts announce "<job id> <version>" (scripts.py)."""
        return f"{self.prefix}:events"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def files_expiry(self) -> str:
        return f"{self.prefix}:expiry:files"

    @property
    def rows_expiry(self) -> str:
        return f"{self.prefix}:expiry:rows"

    @property
    def webhooks(self) -> str:
        """Job ids whose webhook is pending, scored by when the next try is due."""
        return f"{self.prefix}:webhooks"

    def webhook_secret(self, tenant: str) -> str:
        return f"{self.prefix}:webhook-secret:{tenant}"

    def tick(self, schedule_id: str, tick: str) -> str:
        return f"{self.prefix}:tick:{schedule_id}:{tick}"

    @property
    def schedules(self) -> str:
        return f"{self.prefix}:schedules"
