"""Lua scripts that make every job transition on Redis atomic and guarded.

They build index key names from fields of the job hash, so they suit one Redis server
or a primary with replicas, not Redis Cluster.
"""

from __future__ import annotations

# Shared by every script: KEYS[1] is the key prefix, ARGV[1] the job id.
_PRELUDE = """
local prefix = KEYS[1]
local id = ARGV[1]
local job = prefix .. ':job:' .. id
local open = prefix .. ':open'
local function startable(status)
    return status == 'queued' or status == 'retrying' or status == 'running'
end
local function index_keys(tenant, kind, status)
    local base = prefix .. ':idx:' .. tenant
    return {base .. ':s:' .. status, base .. ':s:' .. status .. ':k:' .. kind}
end
-- A job with a callback that finishes gets its webhook outbox entry in the same script
-- (brokers/webhooks.py): due at once (score 0), a new event number, no tries yet.
local function queue_webhook()
    local url = redis.call('HGET', job, 'callback_url')
    if not url or url == '' then return end
    redis.call('HINCRBY', job, 'webhook_seq', 1)
    redis.call('HSET', job, 'webhook_state', 'pending', 'webhook_tries', 0,
               'webhook_deliveries', '[]', 'webhook_due', '0')
    redis.call('ZADD', prefix .. ':webhooks', 0, id)
end
local function move(tenant, kind, old, new)
    for _, key in ipairs(index_keys(tenant, kind, old)) do redis.call('ZREM', key, id) end
    for _, key in ipairs(index_keys(tenant, kind, new)) do redis.call('ZADD', key, 0, id) end
    if startable(new) then redis.call('ZADD', open, 0, id) else redis.call('ZREM', open, id) end
    if startable(old) and not startable(new) then queue_webhook() end
end
local function forget(tenant, kind, status)
    local idem = redis.call('HGET', job, 'idempotency_key')
    if idem and idem ~= '' and redis.call('HGET', idem, 'job') == id then
        redis.call('DEL', idem)
    end
    local base = prefix .. ':idx:' .. tenant
    redis.call('ZREM', base, id)
    redis.call('ZREM', base .. ':k:' .. kind, id)
    for _, key in ipairs(index_keys(tenant, kind, status)) do redis.call('ZREM', key, id) end
    redis.call('ZREM', prefix .. ':expiry:files', id)
    redis.call('ZREM', prefix .. ':expiry:rows', id)
    redis.call('ZREM', open, id)
    redis.call('ZREM', prefix .. ':webhooks', id)
    redis.call('DEL', job)
end
local function fail(f_status, tenant, kind, now, error)
    redis.call('HSET', job, 'status', 'failed', 'finished_at', now, 'error', error)
    move(tenant, kind, f_status, 'failed')
end
"""

# KEYS: prefix, stream. ARGV: id, tenant, kind, status, expires_at, message, idempotency key
# name (a digest of tenant and key; '' for none), its fingerprint, seconds to keep it, then
# the hash's field/value pairs
# -> {1} created | {0} created already (this is a resend) | {3} withdrawn: the API answered
# 503 for it | {2, job id, fingerprint}: an earlier job holds the idempotency key.
SUBMIT = (
    _PRELUDE
    + """
local idem = ''
if ARGV[7] ~= '' then
    idem = prefix .. ':idem:' .. ARGV[7]
    local held = redis.call('HMGET', idem, 'job', 'fingerprint')
    if held[1] and held[1] ~= id then return {2, held[1], held[2]} end
end
if redis.call('EXISTS', job) == 1 then return {0} end
if redis.call('EXISTS', prefix .. ':withdrawn:' .. id) == 1 then return {3} end
local tenant, kind, status, expires_at = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local fields = {}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', job, unpack(fields))
local base = prefix .. ':idx:' .. tenant
redis.call('ZADD', base, 0, id)
redis.call('ZADD', base .. ':k:' .. kind, 0, id)
for _, key in ipairs(index_keys(tenant, kind, status)) do redis.call('ZADD', key, 0, id) end
redis.call('ZADD', open, 0, id)
redis.call('ZADD', prefix .. ':expiry:files', expires_at, id)
redis.call('ZADD', prefix .. ':expiry:rows', expires_at, id)
local entry = redis.call('XADD', KEYS[2], '*', 'data', ARGV[6], 'task_id', id)
redis.call('HSET', job, 'message', ARGV[6], 'entry', entry)
if idem ~= '' then
    redis.call('HSET', idem, 'job', id, 'fingerprint', ARGV[8])
    redis.call('EXPIRE', idem, ARGV[9])
    redis.call('HSET', job, 'idempotency_key', idem)
end
return {1}
"""
)

# After a submit that got no reply. ARGV: id, 'check' | 'withdraw', now, error JSON, seconds
# -> 'stored' (check: the job exists) | 'withdrawn' | 'finished' (withdraw) | 'absent'. An
# absent job is marked withdrawn, so a SUBMIT still in flight finds the mark and does nothing.
SETTLE = (
    _PRELUDE
    + """
if redis.call('EXISTS', job) == 0 then
    redis.call('SET', prefix .. ':withdrawn:' .. id, '1', 'EX', ARGV[5])
    return 'absent'
end
if ARGV[2] == 'check' then return 'stored' end
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind')
if not startable(f[1]) then return 'finished' end
fail(f[1], f[2], f[3], ARGV[3], ARGV[4])
return 'withdrawn'
"""
)

# ARGV: id, now, worker_lost error JSON, expired error JSON, holder (names one hand-out)
# -> {'run', fence} | {'drop', 0} | {'not_a_job', 0}. The same hand-out asking again (its
# reply was lost) gets the same fencing token instead of a second attempt. The token only
# ever grows, even when a release gives the attempt back.
ADMIT = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'attempts', 'max_attempts', 'tenant', 'kind',
                     'expires_at', 'holder', 'fence')
local status, tenant, kind = f[1], f[4], f[5]
if not status then return {'not_a_job', 0} end
local attempts, max_attempts = tonumber(f[2]), tonumber(f[3])
if status == 'running' and ARGV[5] ~= '' and f[7] == ARGV[5] then
    return {'run', tonumber(f[8])}
end
if not startable(status) then return {'drop', 0} end
if redis.call('HGET', job, 'cancel_requested') == '1' then
    redis.call('HSET', job, 'status', 'cancelled', 'finished_at', ARGV[2])
    move(tenant, kind, status, 'cancelled')
    return {'drop', 0}
end
local now = tonumber(ARGV[2])
if tonumber(f[6]) <= now then
    fail(status, tenant, kind, ARGV[2], ARGV[4])
    return {'drop', 0}
end
if attempts < max_attempts then
    local fence = redis.call('HINCRBY', job, 'fence', 1)
    redis.call('HSET', job, 'status', 'running', 'attempts', attempts + 1, 'started_at', ARGV[2],
               'holder', ARGV[5])
    move(tenant, kind, status, 'running')
    return {'run', fence}
end
fail(status, tenant, kind, ARGV[2], ARGV[3])
return {'drop', 0}
"""
)

# ARGV: id, fence -> 1 if the attempt with that token runs the job
HOLDS = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'fence', 'cancel_requested')
if f[1] == 'running' and f[2] == ARGV[2] and f[3] ~= '1' then return 1 end
return 0
"""
)

# ARGV: id, now, new status, result JSON or '', error JSON or '', fence -> 1 if recorded
# (also when this attempt's outcome was recorded already: a repeat after a lost reply)
FINISH = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'fence')
if f[4] ~= ARGV[6] then return 0 end
if f[1] == ARGV[3] then return 1 end
if f[1] ~= 'running' then return 0 end
redis.call('HSET', job, 'status', ARGV[3], 'finished_at', ARGV[2],
           'result', ARGV[4], 'error', ARGV[5])
move(f[2], f[3], 'running', ARGV[3])
return 1
"""
)

# ARGV: id, fence -> 1 if that running attempt went back to queued, its attempt given back
RELEASE = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'attempts', 'fence')
if f[1] ~= 'running' or f[5] ~= ARGV[2] then return 0 end
redis.call('HSET', job, 'status', 'queued', 'attempts', math.max(tonumber(f[4]) - 1, 0),
           'holder', '')
move(f[2], f[3], 'running', 'queued')
return 1
"""
)

# ARGV: id, now, error JSON -> 1 if an unfinished job failed
FAIL_UNDELIVERABLE = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind')
if not f[1] or not startable(f[1]) then return 0 end
fail(f[1], f[2], f[3], ARGV[2], ARGV[3])
return 1
"""
)

# ARGV: id, progress JSON, fence -> 1 if kept
PROGRESS = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'fence', 'cancel_requested')
if f[1] ~= 'running' or f[2] ~= ARGV[3] or f[3] == '1' then return 0 end
redis.call('HSET', job, 'progress', ARGV[2])
return 1
"""
)

# ARGV: id, now -> 'cancelled' | 'requested' | 'finished' | 'not_found'
CANCEL = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind')
if not f[1] then return 'not_found' end
if f[1] == 'cancelled' then return 'cancelled' end
if not startable(f[1]) then return 'finished' end
if f[1] == 'running' then
    redis.call('HSET', job, 'cancel_requested', '1')
    return 'requested'
end
redis.call('HSET', job, 'status', 'cancelled', 'finished_at', ARGV[2])
move(f[2], f[3], f[1], 'cancelled')
return 'cancelled'
"""
)

# KEYS: prefix, stream. ARGV: id, budget -> 'retried' | 'not_retryable' | 'not_found'
RETRY = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'attempts', 'message', 'entry')
if not f[1] then return 'not_found' end
if (f[1] ~= 'failed' and f[1] ~= 'cancelled') or not f[5] or f[5] == '' then
    return 'not_retryable'
end
-- A job cancelled while queued may still have its entry (no worker dropped it yet): that
-- one runs it now; a second would run it twice.
local entry = f[6]
if not entry or entry == '' or #redis.call('XRANGE', KEYS[2], entry, entry) == 0 then
    entry = redis.call('XADD', KEYS[2], '*', 'data', f[5], 'task_id', id)
end
redis.call('HSET', job, 'status', 'queued', 'error', '', 'finished_at', '', 'progress', '',
           'cancel_requested', '0', 'holder', '', 'entry', entry,
           'max_attempts', tonumber(f[4]) + tonumber(ARGV[2]))
move(f[2], f[3], f[1], 'queued')
return 'retried'
"""
)

# ARGV: id -> 'deleted' | 'not_found' | 'not_finished'
DELETE = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind')
if not f[1] then return 'not_found' end
if startable(f[1]) then return 'not_finished' end
forget(f[2], f[3], f[1])
return 'deleted'
"""
)

# ARGV: id -> 1 if the job existed and had finished (an unfinished one is never forgotten)
FORGET = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind')
if not f[1] then
    redis.call('ZREM', prefix .. ':expiry:rows', id)
    return 0
end
if startable(f[1]) then return 0 end
forget(f[2], f[3], f[1])
return 1
"""
)

# ARGV: id -> 1 if the finished job's files are to be purged now
PURGE_FILES = (
    _PRELUDE
    + """
local status = redis.call('HGET', job, 'status')
if not status or startable(status) then return 0 end
redis.call('HSET', job, 'files_purged', 1, 'result', '')
redis.call('ZREM', prefix .. ':expiry:files', id)
return 1
"""
)

# KEYS: prefix, stream. ARGV: id, now, worker_lost error JSON
# -> 'ok' (its message is in the stream) | 'requeued' | 'failed' | 'finished'
SWEEP = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'attempts', 'max_attempts',
                     'entry', 'message')
if not f[1] then redis.call('ZREM', open, id) return 'finished' end
if not startable(f[1]) then redis.call('ZREM', open, id) return 'finished' end
if f[6] and f[6] ~= '' and #redis.call('XRANGE', KEYS[2], f[6], f[6]) > 0 then return 'ok' end
if f[7] and f[7] ~= '' and tonumber(f[4]) < tonumber(f[5]) then
    local entry = redis.call('XADD', KEYS[2], '*', 'data', f[7], 'task_id', id)
    redis.call('HSET', job, 'entry', entry, 'status', 'queued', 'holder', '')
    move(f[2], f[3], f[1], 'queued')
    return 'requeued'
end
if redis.call('HGET', job, 'cancel_requested') == '1' then
    redis.call('HSET', job, 'status', 'cancelled', 'finished_at', ARGV[2])
    move(f[2], f[3], f[1], 'cancelled')
    return 'failed'
end
fail(f[1], f[2], f[3], ARGV[2], ARGV[3])
return 'failed'
"""
)

# Stream scripts: does this consumer still own the pending entry?
_OWNED = """
local function owned(stream, group, consumer, entry)
    local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
    return pending[1] ~= nil and pending[1][2] == consumer
end
"""

# Renew only entries this consumer still owns: XCLAIM with min-idle 0 would steal.
# KEYS: stream. ARGV: group, consumer, entry ids... -> the ids this consumer lost
RENEW = (
    _OWNED
    + """
local lost = {}
for i = 3, #ARGV do
    if owned(KEYS[1], ARGV[1], ARGV[2], ARGV[i]) then
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
        table.insert(lost, ARGV[i])
    end
end
return lost
"""
)

# KEYS: stream. ARGV: group, consumer, entry id -> 1 if acked; an entry another consumer took
# over is left to it (acking it would lose the job if that consumer died)
ACK = (
    _OWNED
    + """
if not owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
"""
)

# KEYS: prefix, stream. ARGV: job id or '', fence or '' (give the attempt back), group,
# consumer, entry id
# -> the new entry id, or 0 when this consumer no longer owned the entry: then nothing
# changes, so a repeat after a lost reply adds no second copy.
HAND_BACK = (
    _PRELUDE
    + _OWNED
    + """
if not owned(KEYS[2], ARGV[3], ARGV[4], ARGV[5]) then return 0 end
local found = redis.call('XRANGE', KEYS[2], ARGV[5], ARGV[5])
redis.call('XACK', KEYS[2], ARGV[3], ARGV[5])
redis.call('XDEL', KEYS[2], ARGV[5])
if #found == 0 then return 0 end
local entry = redis.call('XADD', KEYS[2], '*', unpack(found[1][2]))
if id == '' or redis.call('EXISTS', job) == 0 then return entry end
redis.call('HSET', job, 'entry', entry)
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'attempts', 'fence')
if ARGV[2] ~= '' and f[1] == 'running' and f[5] == ARGV[2] then
    redis.call('HSET', job, 'status', 'queued', 'attempts', math.max(tonumber(f[4]) - 1, 0),
               'holder', '')
    move(f[2], f[3], 'running', 'queued')
end
return entry
"""
)
