"""Key names of the Redis backend, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "offload"

    @property
    def stream(self) -> str:
        return f"{self.prefix}:queue"

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
