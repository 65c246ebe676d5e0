"""What a worker does with a message before TaskiQ's receiver sees it.

TaskiQ's receiver acknowledges, without calling any middleware, a message it cannot parse
or whose task it does not know; the job would then say ``running`` or ``queued`` for good.
So each broker screens a message first: one this worker can run is delivered; one for a
task another live worker knows (a rolling deploy) is handed back; anything else is refused,
and a job it belonged to fails saying why.
"""

from __future__ import annotations

import json
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

    def runs_here(self, payload: bytes) -> bool:
        """Whether this worker can run the message as it is (the common case, decided
        without any I/O)."""
        name = _task_name(payload)
        return name is not None and self.broker.find_task(name) is not None

    async def screen(self, payload: bytes, now: float) -> Screened:
        name = _task_name(payload)
        if name is None:
            # Parse it properly only now, to say what is wrong with it.
            try:
                self.broker.formatter.loads(payload)
                reason = "it names no task"
            except Exception as error:
                reason = str(error)
            unreadable = JobError(
                type="invalid_message",
                message=f"the queued message cannot be read: {reason}",
                retryable=False,
            )
            return Screened(Verdict.REFUSE, error=unreadable)
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


def _task_name(payload: bytes) -> str | None:
    """The task a TaskiQ message names, if it has the shape the receiver needs.

    A cheap check (plain JSON, the fields' types): validating the whole message with
    TaskiQ's model costs about as much again as the rest of a no-op job's hand-out, and
    the receiver validates it once more anyway.
    """
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    name = message.get("task_name")
    shaped = (
        isinstance(name, str)
        and isinstance(message.get("task_id"), str)
        and isinstance(message.get("args", []), list)
        and isinstance(message.get("kwargs", {}), dict)
        and isinstance(message.get("labels", {}), dict)
    )
    return name if shaped else None


def log_refusal(task_id: str, screened: Screened) -> None:
    reason = screened.error.message if screened.error else "refused"
    logger.error("refused message for %s: %s", task_id or "(no task id)", reason)
