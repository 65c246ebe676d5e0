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
local function index_keys(tenant, kind, status)
    local base = prefix .. ':idx:' .. tenant
    return {base .. ':s:' .. status, base .. ':s:' .. status .. ':k:' .. kind}
end
local function move(tenant, kind, old, new)
    for _, key in ipairs(index_keys(tenant, kind, old)) do redis.call('ZREM', key, id) end
    for _, key in ipairs(index_keys(tenant, kind, new)) do redis.call('ZADD', key, 0, id) end
end
local function forget(tenant, kind, status)
    local base = prefix .. ':idx:' .. tenant
    redis.call('ZREM', base, id)
    redis.call('ZREM', base .. ':k:' .. kind, id)
    for _, key in ipairs(index_keys(tenant, kind, status)) do redis.call('ZREM', key, id) end
    redis.call('ZREM', prefix .. ':expiry:files', id)
    redis.call('ZREM', prefix .. ':expiry:rows', id)
    redis.call('DEL', job)
end
local function startable(status)
    return status == 'queued' or status == 'retrying' or status == 'running'
end
"""

# ARGV: id, now, worker_lost error JSON -> 'run' | 'drop' | 'not_a_job'
ADMIT = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'attempts', 'max_attempts', 'tenant', 'kind')
local status, tenant, kind = f[1], f[4], f[5]
local attempts, max_attempts = tonumber(f[2]), tonumber(f[3])
if not status then return 'not_a_job' end
if not startable(status) then return 'drop' end
if attempts < max_attempts then
    redis.call('HSET', job, 'status', 'running', 'attempts', attempts + 1, 'started_at', ARGV[2])
    move(tenant, kind, status, 'running')
    return 'run'
end
redis.call('HSET', job, 'status', 'failed', 'finished_at', ARGV[2], 'error', ARGV[3])
move(tenant, kind, status, 'failed')
return 'drop'
"""
)

# ARGV: id, now, new status, result JSON or '', error JSON or '' -> 1 if recorded
FINISH = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind')
if f[1] ~= 'running' then return 0 end
redis.call('HSET', job, 'status', ARGV[3], 'finished_at', ARGV[2],
           'result', ARGV[4], 'error', ARGV[5])
move(f[2], f[3], 'running', ARGV[3])
return 1
"""
)

# ARGV: id -> 1 if a running job went back to queued
RELEASE = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind', 'attempts')
if f[1] ~= 'running' then return 0 end
redis.call('HSET', job, 'status', 'queued', 'attempts', math.max(tonumber(f[4]) - 1, 0))
move(f[2], f[3], 'running', 'queued')
return 1
"""
)

# ARGV: id, progress JSON
PROGRESS = (
    _PRELUDE
    + """
if redis.call('HGET', job, 'status') == 'running' then
    redis.call('HSET', job, 'progress', ARGV[2])
end
return 0
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

# ARGV: id -> 1 if the job existed
FORGET = (
    _PRELUDE
    + """
local f = redis.call('HMGET', job, 'status', 'tenant', 'kind')
if not f[1] then
    redis.call('ZREM', prefix .. ':expiry:rows', id)
    return 0
end
forget(f[2], f[3], f[1])
return 1
"""
)
