"""Lua scripts that make every job transition on Redis atomic and guarded.

They build index key names from fields of the job hash, so they suit one Redis server
or a primary with replicas, not Redis Cluster.
"""

from __future__ import annotations

# Lanes and due times, for scripts whose KEYS[1] is the key prefix. A lane's stream is
# Keys.lane_stream's; a job due later waits in the delayed set (Keys.delayed) and its hash
# keeps its message, which PROMOTE adds to the stream once due. Every message carries the
# job's ``token``; admission drops a message whose token is not the job's current one.
_LANES = """
local prefix = KEYS[1]
local delayed = prefix .. ':delayed'
local function stream_of(lane)
    if not lane or lane == '' or lane == 'interactive' then return prefix .. ':queue' end
    return prefix .. ':queue:' .. lane
end
local function startable(status)
    return status == 'queued' or status == 'retrying' or status == 'running'
end
"""

# Shared by every job script: KEYS[1] is the key prefix, ARGV[1] the job id.
_PRELUDE = (
    _LANES
    + """
local id = ARGV[1]
local job = prefix .. ':job:' .. id
local open = prefix .. ':open'
local function index_keys(tenant, kind, status)
    local base = prefix .. ':idx:' .. tenant
    return {base .. ':s:' .. status, base .. ':s:' .. status .. ':k:' .. kind}
end
-- Every change a client can see bumps the job's version and tells the API processes
-- watching it (brokers/redis/events.py): a PUBLISH nobody listens to costs next to nothing.
local function changed()
    local version = redis.call('HINCRBY', job, 'version', 1)
    redis.call('PUBLISH', prefix .. ':events', id .. ' ' .. version)
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
    changed()
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
    redis.call('ZREM', delayed, id)
    redis.call('ZREM', prefix .. ':webhooks', id)
    redis.call('DEL', job)
    redis.call('PUBLISH', prefix .. ':events', id .. ' 0')
end
local function fail(f_status, tenant, kind, now, error)
    redis.call('HSET', job, 'status', 'failed', 'finished_at', now, 'error', error,
               'next_attempt_at', '')
    move(tenant, kind, f_status, 'failed')
end
-- Adds one attempt's error (a JSON object) to attempt_errors, a JSON list, with the attempt's
-- number (the hash's ``attempts``), when it failed and when the next one is due ('null':
-- none); by string splicing, so the numbers keep every digit Python wrote.
local function append_error(error, now, retry_at)
    local attempt = redis.call('HGET', job, 'attempts') or '0'
    local item = '{"attempt":' .. attempt .. ',"at":' .. now .. ',"retry_at":' .. retry_at
        .. ',' .. string.sub(error, 2)
    local list = redis.call('HGET', job, 'attempt_errors')
    if not list or list == '' or list == '[]' then
        list = '[' .. item .. ']'
    else
        list = string.sub(list, 1, -2) .. ',' .. item .. ']'
    end
    redis.call('HSET', job, 'attempt_errors', list)
end
-- Queues the job's stored message in its lane's stream under a new token: any older copy
-- still in a stream is stale from now on.
local function requeue(message, lane)
    local token = redis.call('HINCRBY', job, 'token', 1)
    local entry = redis.call('XADD', stream_of(lane), '*', 'data', message, 'task_id', id,
                             'token', token)
    redis.call('HSET', job, 'entry', entry)
    redis.call('ZREM', delayed, id)
    return entry
end
"""
)

# KEYS: prefix, the job's lane's stream. ARGV: id, tenant, kind, status, expires_at, message,
# idempotency key
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
-- A job due later (its due_at after its created_at) waits in the delayed set, not the stream.
local due = redis.call('HGET', job, 'due_at')
due = due and tonumber(due)
if due and due > tonumber(redis.call('HGET', job, 'created_at')) then
    redis.call('ZADD', delayed, due, id)
    redis.call('HSET', job, 'message', ARGV[6], 'entry', '')
else
    local entry = redis.call('XADD', KEYS[2], '*', 'data', ARGV[6], 'task_id', id)
    redis.call('HSET', job, 'message', ARGV[6], 'entry', entry)
end
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

# ARGV: id, now, worker_lost error JSON, expired error JSON, holder (names one hand-out),
# the message's token ('' = 0)
# -> {'run', fence} | {'drop', 0} | {'not_a_job', 0}. The same hand-out asking again (its
# reply was lost) gets the same fencing token instead of a second attempt. The token only
# ever grows, even when a release gives the attempt back. A message whose token is not the
# job's is a stale copy (a retry queued a newer one): dropped, the job untouched.
ADMIT = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'attempts', 'max_attempts', 'tenant', 'kind',
                     'expires_at', 'holder', 'fence', 'token', 'cancel_requested')
local status, tenant, kind = f[1], f[4], f[5]
if not status then return {'not_a_job', 0} end
local attempts, max_attempts = tonumber(f[2]), tonumber(f[3])
if status == 'running' and ARGV[5] ~= '' and f[7] == ARGV[5] then
    return {'run', tonumber(f[8])}
end
local delivered = ARGV[6]
if not delivered or delivered == '' then delivered = '0' end
if (f[9] or '0') ~= delivered then return {'drop', 0} end
if not startable(status) then return {'drop', 0} end
if f[10] == '1' then
    redis.call('HSET', job, 'status', 'cancelled', 'finished_at', ARGV[2], 'next_attempt_at', '')
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
               'holder', ARGV[5], 'next_attempt_at', '')
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
if ARGV[5] ~= '' then append_error(ARGV[5], ARGV[2], 'null') end
redis.call('HSET', job, 'status', ARGV[3], 'finished_at', ARGV[2],
           'result', ARGV[4], 'error', ARGV[5], 'next_attempt_at', '')
move(f[2], f[3], 'running', ARGV[3])
return 1
"""
)

# ARGV: id, now, error JSON, due time, fence
# -> 'retrying' | 'cancelled' | 'failed' (see JobStore.schedule_retry) | 'lost' (the attempt
# no longer holds the job). A repeat after a lost reply answers as the first did.
SCHEDULE_RETRY = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'fence', 'attempts',
                     'max_attempts', 'cancel_requested', 'message')
if f[4] ~= ARGV[5] then return 'lost' end
if f[1] ~= 'running' then
    if f[1] == 'retrying' or f[1] == 'cancelled' or f[1] == 'failed' then return f[1] end
    return 'lost'
end
if f[7] == '1' then
    append_error(ARGV[3], ARGV[2], 'null')
    redis.call('HSET', job, 'status', 'cancelled', 'finished_at', ARGV[2], 'next_attempt_at', '')
    move(f[2], f[3], 'running', 'cancelled')
    return 'cancelled'
end
if tonumber(f[5]) >= tonumber(f[6]) or not f[8] or f[8] == '' then
    append_error(ARGV[3], ARGV[2], 'null')
    fail('running', f[2], f[3], ARGV[2], ARGV[3])
    return 'failed'
end
append_error(ARGV[3], ARGV[2], ARGV[4])
redis.call('HINCRBY', job, 'token', 1)
redis.call('HSET', job, 'status', 'retrying', 'error', ARGV[3], 'next_attempt_at', ARGV[4],
           'entry', '', 'holder', '')
move(f[2], f[3], 'running', 'retrying')
redis.call('ZADD', delayed, ARGV[4], id)
return 'retrying'
"""
)

# KEYS: prefix. ARGV: '' (no job), now, most to move
# -> {moved, the earliest due time still waiting or ''}. Moves each due id from the delayed set
# into its lane's stream: a job's stored message (if the job still waits: a cancelled one is
# just forgotten) or a plain message kicked with a delay. Atomic, so with many workers calling
# it each message is moved once, and a repeat after a lost reply finds nothing left to move.
PROMOTE = (
    _LANES
    + """
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
    redis.call('ZREM', delayed, id)
    local job = prefix .. ':job:' .. id
    local f = redis.call('HMGET', job, 'status', 'message', 'lane', 'token')
    if f[1] then
        if (f[1] == 'queued' or f[1] == 'retrying') and f[2] and f[2] ~= '' then
            local entry = redis.call('XADD', stream_of(f[3]), '*', 'data', f[2], 'task_id', id,
                                     'token', f[4] or '0')
            redis.call('HSET', job, 'entry', entry)
        end
    else
        local plain = prefix .. ':delayed:' .. id
        local m = redis.call('HMGET', plain, 'data', 'lane')
        if m[1] then
            redis.call('XADD', stream_of(m[2]), '*', 'data', m[1], 'task_id', id)
            redis.call('DEL', plain)
        end
    end
end
local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
return {#due, first[2] or ''}
"""
)

# KEYS: prefix. ARGV: '' (no job), task id, due time, message, lane. A plain TaskiQ message
# (no job) kicked with a delay: kept beside the delayed set until PROMOTE moves it.
DELAY_MESSAGE = (
    _LANES
    + """
local plain = prefix .. ':delayed:' .. ARGV[2]
redis.call('HSET', plain, 'data', ARGV[4], 'lane', ARGV[5])
redis.call('ZADD', delayed, ARGV[3], ARGV[2])
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
changed()
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
    changed()
    return 'requested'
end
redis.call('HSET', job, 'status', 'cancelled', 'finished_at', ARGV[2], 'next_attempt_at', '')
move(f[2], f[3], f[1], 'cancelled')
redis.call('ZREM', delayed, id)
return 'cancelled'
"""
)

# KEYS: prefix. ARGV: id, budget -> 'retried' | 'not_retryable' | 'not_found'. Always a new
# message under a new token: an older entry still in a stream (a job cancelled while queued,
# a worker's finished entry not yet acked) is stale and dropped by admission, so the job runs
# once and is never left without a message. Status is no longer failed/cancelled after it,
# so a repeat after a lost reply adds nothing.
RETRY = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'attempts', 'message', 'lane')
if not f[1] then return 'not_found' end
if (f[1] ~= 'failed' and f[1] ~= 'cancelled') or not f[5] or f[5] == '' then
    return 'not_retryable'
end
requeue(f[5], f[6])
redis.call('HSET', job, 'status', 'queued', 'error', '', 'finished_at', '', 'progress', '',
           'cancel_requested', '0', 'holder', '', 'next_attempt_at', '',
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
changed()
redis.call('ZREM', prefix .. ':expiry:files', id)
return 1
"""
)

# KEYS: prefix. ARGV: id, now, worker_lost error JSON
# -> 'ok' (its message waits: due later, or in its lane's stream) | 'requeued' | 'failed' |
# 'finished'
SWEEP = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'attempts', 'max_attempts',
                     'entry', 'message', 'lane')
if not f[1] then redis.call('ZREM', open, id) return 'finished' end
if not startable(f[1]) then redis.call('ZREM', open, id) return 'finished' end
if redis.call('ZSCORE', delayed, id) then return 'ok' end
local stream = stream_of(f[8])
if f[6] and f[6] ~= '' and #redis.call('XRANGE', stream, f[6], f[6]) > 0 then return 'ok' end
-- A lost job whose cancel was asked ends cancelled, as on SQLite, rather than run again.
if redis.call('HGET', job, 'cancel_requested') == '1' then
    redis.call('HSET', job, 'status', 'cancelled', 'finished_at', ARGV[2], 'next_attempt_at', '')
    move(f[2], f[3], f[1], 'cancelled')
    return 'failed'
end
if f[7] and f[7] ~= '' and tonumber(f[4]) < tonumber(f[5]) then
    requeue(f[7], f[8])
    redis.call('HSET', job, 'status', 'queued', 'holder', '')
    move(f[2], f[3], f[1], 'queued')
    return 'requeued'
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
local token = '0'
for i = 1, #found[1][2], 2 do
    if found[1][2][i] == 'token' then token = found[1][2][i + 1] end
end
-- A stale copy handed back stays stale: the job's entry keeps naming its current message.
if (redis.call('HGET', job, 'token') or '0') ~= token then return entry end
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
