"""What a worker does with a message before TaskiQ's receiver sees it.

TaskiQ's receiver acknowledges, without calling any middleware, a message it cannot parse
or whose task it does not know; the job would then say ``running`` or ``queued`` for good.
So each broker screens a message first: one this worker can run is delivered; one for a
task another live worker knows (a rolling deploy) is handed back; anything else is refused,
and a job it belonged to fails saying why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from taskiq import AsyncBroker

from brokers.contract import WorkerRegistry
from schemas.jobs import JobError

logger = logging.getLogger(__name__)


class Verdict(Enum):
    DELIVER = "deliver"
    HAND_BACK = "hand_back"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Screened:
    verdict: Verdict
    task_name: str = ""
    error: JobError | None = None
    """Why a refused message cannot run; recorded on its job."""


class MessageScreen:
    def __init__(self, broker: AsyncBroker, registry: WorkerRegistry, live_within: float):
        self.broker = broker
        self.registry = registry
        self.live_within = live_within

    def task_names(self) -> list[str]:
        return sorted(self.broker.get_all_tasks())

    async def screen(self, payload: bytes, now: float) -> Screened:
        try:
            message = self.broker.formatter.loads(payload)
        except Exception as error:
            unreadable = JobError(
                type="invalid_message",
                message=f"the queued message cannot be read: {error}",
                retryable=False,
            )
            return Screened(Verdict.REFUSE, error=unreadable)
        name = message.task_name
        if self.broker.find_task(name) is not None:
            return Screened(Verdict.DELIVER, name)
        if await self.registry.known_by_a_live_worker(name, now, self.live_within):
            return Screened(Verdict.HAND_BACK, name)
        unknown = JobError(
            type="unknown_kind",
            message=f"no running worker knows the task {name!r}",
            retryable=True,
        )
        return Screened(Verdict.REFUSE, name, unknown)


def log_refusal(task_id: str, screened: Screened) -> None:
    reason = screened.error.message if screened.error else "refused"
    logger.error("refused message for %s: %s", task_id or "(no task id)", reason)
