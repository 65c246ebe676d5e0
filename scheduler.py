"""The TaskiQ scheduler: ``taskiq scheduler scheduler:scheduler tasks``."""

from taskiq import TaskiqScheduler

import tasks  # noqa: F401  - registers every task and its schedule labels
from brokers import backend
from brokers.factory import Backend


def build_scheduler(of: Backend) -> TaskiqScheduler:
    return TaskiqScheduler(of.broker, of.schedule_sources)


scheduler = build_scheduler(backend)
