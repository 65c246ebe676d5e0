"""Webhook delivery runs beside the tasks in every worker process (service.webhooks)."""

from __future__ import annotations

from taskiq import TaskiqEvents, TaskiqState

from brokers import backend, broker
from service.webhooks.dispatcher import WebhookDispatcher, WebhookPolicy

_dispatchers: list[WebhookDispatcher] = []


async def _start(_: TaskiqState) -> None:
    dispatcher = WebhookDispatcher(backend, WebhookPolicy.of(backend.settings))
    dispatcher.start()
    _dispatchers.append(dispatcher)


async def _stop(_: TaskiqState) -> None:
    while _dispatchers:
        await _dispatchers.pop().stop()


broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, _start)
broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, _stop)
