"""The webhook outbox on Redis: fields of the job hash (``webhook_seq``, ``webhook_state``,
``webhook_tries``, ``webhook_due``, ``webhook_deliveries``) and a sorted set of the pending
ones by due time (``{prefix}:webhooks``), which ``move`` in scripts._PRELUDE fills."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from brokers.redis.keys import Keys
from brokers.webhooks import DELIVERIES, DueWebhook, event_id
from schemas.webhooks import JobWebhook, WebhookDelivery, WebhookState

# KEYS: prefix. ARGV: now, limit, lease until -> {{job id, seq, tries}, ...}. An entry whose
# job is gone (deleted, purged) or no longer pending is dropped.
CLAIM = """
local due = KEYS[1] .. ':webhooks'
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
    local f = redis.call('HMGET', KEYS[1] .. ':job:' .. id, 'webhook_seq', 'webhook_tries',
                         'webhook_state')
    if f[3] ~= 'pending' then
        redis.call('ZREM', due, id)
    else
        redis.call('ZADD', due, ARGV[3], id)
        redis.call('HSET', KEYS[1] .. ':job:' .. id, 'webhook_due', ARGV[3])
        out[#out + 1] = {id, f[1], f[2] or '0'}
    end
end
return out
"""

# KEYS: prefix. ARGV: job id, seq, state, a try's JSON or '', next due or '', tries before
# -> 1 if recorded; 0 if the job is gone, finished again since (with its own entry), or a try
# was recorded since the claim (so a resend after a lost reply adds nothing).
RECORD = """
local job = KEYS[1] .. ':job:' .. ARGV[1]
local due = KEYS[1] .. ':webhooks'
local f = redis.call('HMGET', job, 'webhook_seq', 'webhook_deliveries', 'webhook_tries')
if not f[1] or f[1] ~= ARGV[2] then return 0 end
if tonumber(f[3]) ~= tonumber(ARGV[6]) then return 0 end
if ARGV[4] ~= '' then
    local list = f[2]
    if not list or list == '' or list == '[]' then
        list = '[' .. ARGV[4] .. ']'
    else
        list = string.sub(list, 1, -2) .. ',' .. ARGV[4] .. ']'
    end
    redis.call('HSET', job, 'webhook_deliveries', list)
    redis.call('HINCRBY', job, 'webhook_tries', 1)
end
redis.call('HSET', job, 'webhook_state', ARGV[3], 'webhook_due', ARGV[5])
if ARGV[5] == '' then
    redis.call('ZREM', due, ARGV[1])
else
    redis.call('ZADD', due, ARGV[5], ARGV[1])
end
-- The job's webhook is part of what a client sees: a new version, and its event.
local version = redis.call('HINCRBY', job, 'version', 1)
redis.call('PUBLISH', KEYS[1] .. ':events', ARGV[1] .. ' ' .. version)
return 1
"""


def webhook_of(fields: dict[str, str]) -> JobWebhook | None:
    """The job's webhook from its hash fields; None until the job first finished."""
    state = fields.get("webhook_state")
    if not state:
        return None
    due = fields.get("webhook_due") or ""
    return JobWebhook(
        url=fields.get("callback_url", ""),
        state=WebhookState(state),
        event_id=event_id(fields["id"], int(fields.get("webhook_seq") or 1)),
        next_try_at=datetime.fromtimestamp(float(due), UTC) if due and float(due) else None,
        deliveries=DELIVERIES.validate_json(fields.get("webhook_deliveries") or "[]"),
    )


class RedisWebhookOutbox:
    """Implements :class:`brokers.webhooks.WebhookOutbox`."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._claim = redis.register_script(CLAIM)
        self._record = redis.register_script(RECORD)

    async def claim(self, now: float, limit: int, lease_until: float) -> list[DueWebhook]:
        rows = await self._claim(
            keys=[self.keys.prefix], args=[repr(now), limit, repr(lease_until)]
        )
        return [DueWebhook(str(job_id), int(seq), int(tries)) for job_id, seq, tries in rows]

    async def record(
        self,
        due: DueWebhook,
        delivery: WebhookDelivery | None,
        state: WebhookState,
        next_at: float | None,
    ) -> bool:
        args: list[str | int] = [
            due.job_id,
            due.seq,
            state.value,
            "" if delivery is None else delivery.model_dump_json(),
            "" if next_at is None else repr(next_at),
            due.tries,
        ]
        return bool(await self._record(keys=[self.keys.prefix], args=args))

    async def secret(self, tenant: str, candidate: str) -> str:
        key = self.keys.webhook_secret(tenant)
        # NX: the first process to ask stores its candidate; every other one reads that.
        await self.redis.set(key, candidate, nx=True)
        return str(await self.redis.get(key))
