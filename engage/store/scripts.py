"""Lua scripts: one per write path, each opening with its KEYS and ARGV.

Every script touches keys of one hash tag only (one article or one poll), so it runs
on a Redis Cluster slot unchanged. Scripts are registered once per client; redis-py
sends EVALSHA and reloads the source itself after a NOSCRIPT (restart, failover).

Return conventions: the first element is a status. 1 = changed, 0 = nothing to do
(idempotent repeat), negative = a domain refusal the Python wrapper turns into an
error (-1 unknown owner, -2 throttled with the seconds left as the second element).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNKNOWN = -1
THROTTLED = -2

# Shared Lua helpers, prepended to scripts that need them.
_LUA_THROTTLE = """
local function throttle(key, limit, window)
  local used = tonumber(redis.call('GET', key) or '0')
  if used >= limit then
    local ttl = redis.call('TTL', key)
    if ttl < 1 then ttl = window end
    return ttl
  end
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, window) end
  return 0
end
local function bump(hour, day, field, hour_ttl, day_ttl)
  redis.call('HINCRBY', hour, field, 1)
  redis.call('EXPIRE', hour, hour_ttl)
  redis.call('HINCRBY', day, field, 1)
  redis.call('EXPIRE', day, day_ttl)
end
"""

VOTE_REACTION = _LUA_THROTTLE + """
-- Cast, change or withdraw one reader's reaction on one article.
-- KEYS[1] article hash (must exist)    KEYS[2] counts hash    KEYS[3] reasons hash
-- KEYS[4] voters hash                  KEYS[5] throttle string (this address)
-- KEYS[6] events stream                KEYS[7] hour bucket    KEYS[8] day bucket
-- ARGV[1] reader hash   ARGV[2] choice ('' withdraws)   ARGV[3] reason ('' none)
-- ARGV[4] throttle limit   ARGV[5] throttle window (s)
-- ARGV[6] hour bucket ttl (s)   ARGV[7] day bucket ttl (s)
-- ARGV[8] oldest event id to keep (ms)   ARGV[9] article id
-- Returns {status, mine, counts...} or {-1} unknown article or {-2, retry_after}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local reader, choice, reason = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[4], reader)
local new = false
if choice ~= '' then
  new = choice
  if reason ~= '' then new = choice .. '|' .. reason end
end
if old == new then
  return {0, old or '', unpack(redis.call('HGETALL', KEYS[2]))}
end
local wait = throttle(KEYS[5], tonumber(ARGV[4]), tonumber(ARGV[5]))
if wait > 0 then return {-2, wait} end
local hour_ttl, day_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local old_choice, old_reason = '', ''
if old then
  old_choice, old_reason = string.match(old, '^([^|]*)|?(.*)$')
  redis.call('HINCRBY', KEYS[2], old_choice, -1)
  if old_reason ~= '' then redis.call('HINCRBY', KEYS[3], old_reason, -1) end
  bump(KEYS[7], KEYS[8], '-' .. old_choice, hour_ttl, day_ttl)
end
local action = 'vote'
if new then
  if old then action = 'change' end
  redis.call('HSET', KEYS[4], reader, new)
  redis.call('HINCRBY', KEYS[2], choice, 1)
  bump(KEYS[7], KEYS[8], '+' .. choice, hour_ttl, day_ttl)
  if reason ~= '' then
    redis.call('HINCRBY', KEYS[3], reason, 1)
    bump(KEYS[7], KEYS[8], 'reason:' .. reason, hour_ttl, day_ttl)
  end
else
  action = 'withdraw'
  redis.call('HDEL', KEYS[4], reader)
end
redis.call('XADD', KEYS[6], 'MINID', '~', ARGV[8], '*',
  'type', 'reaction.' .. action, 'article', ARGV[9], 'choice', choice,
  'previous', old_choice, 'reason', reason, 'reader', reader)
return {1, new or '', unpack(redis.call('HGETALL', KEYS[2]))}
"""

UPSERT_ARTICLE = """
-- Create or update an article's metadata and log it.
-- KEYS[1] article hash   KEYS[2] events stream
-- ARGV[1] title  ARGV[2] url  ARGV[3] section  ARGV[4] published_at  ARGV[5] tags JSON
-- ARGV[6] now (ISO 8601)  ARGV[7] oldest event id to keep (ms)  ARGV[8] article id
-- Returns {created (1|0), previous section or '', created_at}.
local existed = redis.call('EXISTS', KEYS[1])
local previous = redis.call('HGET', KEYS[1], 'section') or ''
if existed == 0 then redis.call('HSET', KEYS[1], 'created_at', ARGV[6]) end
redis.call('HSET', KEYS[1], 'title', ARGV[1], 'url', ARGV[2], 'section', ARGV[3],
  'published_at', ARGV[4], 'tags', ARGV[5], 'updated_at', ARGV[6])
local action = 'updated'
if existed == 0 then action = 'created' end
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[7], '*',
  'type', 'article.' .. action, 'article', ARGV[8])
return {1 - existed, previous, redis.call('HGET', KEYS[1], 'created_at')}
"""


@dataclass(frozen=True)
class ScriptResult:
    status: int
    values: list[Any]


def parse(raw: list[Any]) -> ScriptResult:
    return ScriptResult(int(raw[0]), list(raw[1:]))


ALL = {
    "vote_reaction": VOTE_REACTION,
    "upsert_article": UPSERT_ARTICLE,
}
