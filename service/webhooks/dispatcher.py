"""Delivers due webhooks from the backend's outbox; runs in every worker process.

Each pass claims the entries that are due (for a lease, so two workers never send the same
try at once), POSTs each in its own task, and records the try with the next due time.
Everything lives in the outbox, so a worker killed between tries loses nothing: the next
worker to find the entry due sends it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from brokers.background import stop_task
from brokers.backoff import Backoff
from brokers.factory import Backend
from brokers.webhooks import DueWebhook, WebhookOutbox, event_id
from schemas.webhooks import WebhookDelivery, WebhookState
from service.presenters import present_job
from service.settings import Settings
from service.webhooks.sender import Resolver, TryOutcome, send
from service.webhooks.signing import new_secret, signed_headers

logger = logging.getLogger("offload.webhooks")

POLL_SECONDS = 0.25
"""How often a worker looks for due webhooks: one indexed read, so cheap when idle."""
CONCURRENCY = 16
"""Webhooks one worker process sends at once: a slow receiver holds one slot, not all."""


@dataclass(frozen=True)
class WebhookPolicy:
    allow_private: bool = False
    timeout_s: float = 10.0
    max_tries: int = 8
    backoff: Backoff = field(default_factory=lambda: Backoff(30.0, 1800.0))

    @classmethod
    def of(cls, settings: Settings) -> WebhookPolicy:
        return cls(
            allow_private=settings.webhook_allow_private,
            timeout_s=settings.webhook_timeout_seconds,
            max_tries=settings.webhook_max_tries,
            backoff=Backoff(
                settings.webhook_backoff_base_seconds, settings.webhook_backoff_cap_seconds
            ),
        )

    @property
    def lease_s(self) -> float:
        """How long a claimed try is hidden from other workers: longer than a try can take."""
        return self.timeout_s + 5.0

    def gap_after(self, tries: int, rng: random.Random | None = None) -> float:
        """The wait after the ``tries``-th failed try: the Backoff's ceiling with "equal
        jitter" (the upper half of full jitter), so a receiver that is down sees the gaps
        grow while many webhooks that failed together still spread out."""
        ceiling = min(self.backoff.cap_s, self.backoff.base_s * 2.0 ** max(0, tries - 1))
        return ceiling / 2 + self.backoff.delay(tries, rng) / 2


class WebhookDispatcher:
    def __init__(
        self,
        backend: Backend,
        policy: WebhookPolicy,
        *,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
    ) -> None:
        if backend.webhooks is None:
            raise ValueError("this backend keeps no webhook outbox")
        self.backend = backend
        self.outbox: WebhookOutbox = backend.webhooks
        self.policy = policy
        self.clock = clock
        self.resolver = resolver
        self._secrets: dict[str, str] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run(), name="offload-webhooks")

    async def stop(self) -> None:
        """Stop claiming; tries under way are cut short and sent again after their lease."""
        tasks = [task for task in (self._loop, *self._sending) if task is not None]
        await asyncio.gather(*(stop_task(task) for task in tasks))
        self._loop = None

    async def _run(self) -> None:
        while True:
            try:
                await self.dispatch_due()
            except Exception as error:  # an outage: the entries wait in the outbox
                logger.warning("could not read due webhooks (%r); will try again", error)
            await asyncio.sleep(POLL_SECONDS)

    async def dispatch_due(self) -> int:
        """Claim what is due and start sending it; how many were claimed."""
        free = CONCURRENCY - len(self._sending)
        if free <= 0:
            return 0
        now = self.clock()
        claimed = await self.outbox.claim(now, free, now + self.policy.lease_s)
        for due in claimed:
            task = asyncio.create_task(self._deliver_logged(due), name=f"webhook-{due.job_id}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return len(claimed)

    async def _deliver_logged(self, due: DueWebhook) -> None:
        try:
            await self.deliver(due)
        except Exception:  # its lease runs out and another pass tries again
            logger.exception("webhook of job %s failed unexpectedly", due.job_id)

    async def deliver(self, due: DueWebhook) -> None:
        """One try of a claimed webhook, recorded with what comes next."""
        job = await self.backend.store.get(due.job_id)
        if job is None or job.callback_url is None:
            return  # deleted: its entry went with it
        if job.is_expired(self.clock()):
            await self.outbox.record(due, None, WebhookState.FAILED, None)
            logger.info("webhook of job %s given up: the job expired", job.id)
            return
        if not job.status.is_terminal:
            # Retried by hand before its webhook went out: its next finish sends a new one.
            await self.outbox.record(due, None, WebhookState.FAILED, None)
            return
        message_id = event_id(job.id, due.seq)
        body = present_job(job).model_dump_json(exclude={"webhook"}).encode()
        secret = await self._secret(job.tenant)
        timestamp = int(self.clock())
        at = self.clock()
        outcome = await send(
            job.callback_url,
            body,
            signed_headers(secret, message_id, timestamp, body),
            allow_private=self.policy.allow_private,
            timeout_s=self.policy.timeout_s,
            resolver=self.resolver,
        )
        tries = due.tries + 1
        state, next_at = self._next(outcome, tries)
        delivery = WebhookDelivery(
            at=datetime.fromtimestamp(at, UTC),
            status_code=outcome.status_code,
            error=outcome.error
            or (None if outcome.delivered else f"the receiver answered {outcome.status_code}"),
            duration_ms=round(outcome.duration_ms, 1),
        )
        await self.outbox.record(due, delivery, state, next_at)
        logger.info(
            "webhook %s of job %s: try %d %s (%s)",
            message_id,
            job.id,
            tries,
            state.value,
            outcome.status_code or outcome.error,
            extra={"job_id": job.id},
        )

    def _next(self, outcome: TryOutcome, tries: int) -> tuple[WebhookState, float | None]:
        if outcome.delivered:
            return WebhookState.DELIVERED, None
        if outcome.refused or tries >= self.policy.max_tries:
            return WebhookState.FAILED, None
        return WebhookState.PENDING, self.clock() + self.policy.gap_after(tries)

    async def _secret(self, tenant: str) -> str:
        if tenant not in self._secrets:
            self._secrets[tenant] = await self.outbox.secret(tenant, new_secret())
        return self._secrets[tenant]
