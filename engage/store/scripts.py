"""Lua scripts: one per write path, each opening with its KEYS and ARGV.

Every script touches keys of one hash tag only (one article or one poll), so it runs
on a Redis Cluster slot unchanged. Scripts are registered once per client; redis-py
sends EVALSHA and reloads the source itself after a NOSCRIPT (restart, failover).

Return conventions: the first element is a `Status` (CHANGED, or UNCHANGED for an
idempotent repeat), or a refusal of `engage.errors.REFUSALS` named as its class is (every
script opens with `_LUA_STATUSES`), which `result` raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from engage import errors, formulas


class Status(IntEnum):
    CHANGED = 1
    UNCHANGED = 0


# Prepended to every script that returns a status, so the Lua names the statuses and the
# refusals as Python does: refusal i of REFUSALS is -1 - i.
_LUA_STATUSES = "local CHANGED, UNCHANGED, {} = 1, 0, {}\n".format(
    ", ".join(refusal.__name__ for refusal in errors.REFUSALS),
    ", ".join(str(-1 - i) for i in range(len(errors.REFUSALS))),
)


@dataclass(frozen=True)
class ScriptResult:
    status: int
    values: list[Any]


def result(raw: list[Any]) -> ScriptResult:
    """The script's result, or the refusal it returned raised with the values after it
    (Throttled's seconds left, InvalidOptions' rule)."""
    status = int(raw[0])
    if status < 0:
        raise errors.REFUSALS[-1 - status](*raw[1:])
    return ScriptResult(status, list(raw[1:]))


# Shared Lua helpers, prepended to scripts that need them.
_LUA_THROTTLE = """
-- An address's budgets as {key, limit}: KEYS[own] (its group's), then KEYS[wide..] (each
-- wider network's, store/budgets.py), with their limits comma-joined in that order.
local function budgets(own, wide, limits)
  local keys = {KEYS[own]}
  for i = wide, #KEYS do keys[#keys + 1] = KEYS[i] end
  local out, n = {}, 0
  for limit in string.gmatch(limits, '[^,]+') do
    n = n + 1
    out[n] = {keys[n], tonumber(limit)}
  end
  return out
end
-- Spend one from every budget, or from none when one is used up: a refused request
-- costs nobody's budget. Returns 0, or the seconds until every used-up budget frees
-- and the position of the first used up (1: the address group's own).
local function spend(list, window)
  local wait, first = 0, 0
  for i, b in ipairs(list) do
    if tonumber(redis.call('GET', b[1]) or '0') >= b[2] then
      local ttl = redis.call('TTL', b[1])
      if ttl < 1 then ttl = window end
      if ttl > wait then wait = ttl end
      if first == 0 then first = i end
    end
  end
  if wait > 0 then return wait, first end
  for _, b in ipairs(list) do
    if redis.call('INCR', b[1]) == 1 then redis.call('EXPIRE', b[1], window) end
  end
  return 0, 0
end
-- The hour bucket's stamp (YYYYMMDDHH) rides on each event, so aggregates kept from the
-- streams land in the same buckets as the article's own, whatever the clock.
local function stamp(hour_key)
  return string.match(hour_key, ':h:(%d+)$') or ''
end
local function bump(hour, day, field, hour_ttl, day_ttl)
  redis.call('HINCRBY', hour, field, 1)
  redis.call('EXPIRE', hour, hour_ttl)
  redis.call('HINCRBY', day, field, 1)
  redis.call('EXPIRE', day, day_ttl)
end
"""

VOTE_REACTION = _LUA_STATUSES + _LUA_THROTTLE + """
-- Cast, change or withdraw one reader's reaction on one article.
-- KEYS[1] article hash (must exist)    KEYS[2] counts hash    KEYS[3] reasons hash
-- KEYS[4] voters hash                  KEYS[5] throttle string (this address group)
-- KEYS[6] events stream                KEYS[7] hour bucket    KEYS[8] day bucket
-- KEYS[9..] throttle strings of the address's wider networks (none or more)
-- ARGV[1] reader hash   ARGV[2] choice ('' withdraws)   ARGV[3] reason ('' none)
-- ARGV[4] throttle limits, comma-joined: KEYS[5]'s, then KEYS[9..]'s
-- ARGV[5] throttle window (s)
-- ARGV[6] hour bucket ttl (s)   ARGV[7] day bucket ttl (s)
-- ARGV[8] oldest event id to keep (ms)   ARGV[9] article id
-- ARGV[10] channel the vote came through (web, email, nojs, amp)
-- ARGV[11] '1' logs the event without the reader (an erasure's withdrawal), else ''
-- ARGV[12] every site's reaction set, a line each: "\\n<site>\\t<choices>\\t<reason
--   choice>\\t<reasons>\\n", lists comma-joined, the default site's first (sites.py)
-- Returns {CHANGED or UNCHANGED, mine, the article's set, counts...}, or
-- {UnknownArticle}, {InvalidChoice, field, allowed[, reason choice]} or
-- {Throttled, retry_after}.
-- A repeated choice and a throttled vote are counted as refused in the buckets.
local title, site, set = unpack(redis.call('HMGET', KEYS[1], 'title', 'site', 'reactions'))
if not title then return {UnknownArticle} end
local reader, choice, reason = ARGV[1], ARGV[2], ARGV[3]
-- The article's own set, else its site's line, else (no site: stored before sites) the
-- default's, the first line.
if not set then
  local from = site and string.find(ARGV[12], '\\n' .. site .. '\\t', 1, true)
  if from then from = from + #site + 2 else from = string.find(ARGV[12], '\\t', 1, true) + 1 end
  set = string.sub(ARGV[12], from, string.find(ARGV[12], '\\n', from, true) - 1)
end
if choice ~= '' then
  local choices, reason_choice, reasons = string.match(set, '^([^\\t]*)\\t([^\\t]*)\\t(.*)$')
  if not string.find(',' .. choices .. ',', ',' .. choice .. ',', 1, true) then
    return {InvalidChoice, 'choice', choices}
  end
  if reason ~= '' then
    if choice ~= reason_choice then return {InvalidChoice, 'reason', '', reason_choice} end
    if not string.find(',' .. reasons .. ',', ',' .. reason .. ',', 1, true) then
      return {InvalidChoice, 'reason', reasons}
    end
  end
end
local hour_ttl, day_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local old = redis.call('HGET', KEYS[4], reader)
local new = false
if choice ~= '' then
  new = choice
  if reason ~= '' then new = choice .. '|' .. reason end
end
if old == new then
  if new then bump(KEYS[7], KEYS[8], 'refused:votes_duplicate', hour_ttl, day_ttl) end
  return {UNCHANGED, old or '', set, unpack(redis.call('HGETALL', KEYS[2]))}
end
local wait = spend(budgets(5, 9, ARGV[4]), tonumber(ARGV[5]))
if wait > 0 then
  bump(KEYS[7], KEYS[8], 'refused:votes_throttled', hour_ttl, day_ttl)
  return {Throttled, wait}
end
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
  bump(KEYS[7], KEYS[8], 'channel:' .. ARGV[10], hour_ttl, day_ttl)
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
  'previous', old_choice, 'reason', reason, 'reader', ARGV[11] == '1' and '' or reader,
  'hour', stamp(KEYS[7]), 'channel', ARGV[10])
return {CHANGED, new or '', set, unpack(redis.call('HGETALL', KEYS[2]))}
"""

SPEND_BUDGET = _LUA_STATUSES + _LUA_THROTTLE + """
-- Spend one from an address's budget for a request not tied to one article (minting a
-- reader token, reporting impressions), and from each of its wider networks'.
-- KEYS[1] budget string (this address group)
-- KEYS[2..] budget strings of the address's wider networks (none or more)
-- ARGV[1] limits, comma-joined: KEYS[1]'s, then KEYS[2..]'s   ARGV[2] window (s)
-- Returns {CHANGED} or {RateLimited, retry_after}.
local wait = spend(budgets(1, 2, ARGV[1]), tonumber(ARGV[2]))
if wait > 0 then return {RateLimited, wait} end
return {CHANGED}
"""

UPSERT_ARTICLE = """
-- Create or update an article's metadata and log it; a page or a feed leaves an
-- editor's article as it is unless the editor chose to follow the page.
-- KEYS[1] article hash   KEYS[2] events stream
-- ARGV[1] title  ARGV[2] url  ARGV[3] section  ARGV[4] published_at  ARGV[5] tags JSON
-- ARGV[6] now (ISO 8601)  ARGV[7] oldest event id to keep (ms)  ARGV[8] article id
-- ARGV[9] site ('' keeps the article's; an article without one is the default site's)
-- ARGV[10] its own reaction set, encoded (sites.encode_set; '' keeps it, '-' drops it
-- for its site's)
-- ARGV[11] source: 'editor', 'page' or 'feed'   ARGV[12] verified_at ('' leaves it)
-- ARGV[13] follow_page: '1', '0', or '' to keep the editor's choice
-- Returns {created (1|0), previous section or '', created_at, site or '', own set or '',
-- verified_at or '', follow_page or ''}, or {'kept'} when a page or feed met an article it
-- may not change: an editor's (one stored before sources existed is an editor's) not
-- following the page, or another site's.
local existed = redis.call('EXISTS', KEYS[1])
if existed == 1 and ARGV[11] ~= 'editor' then
  local owned = redis.call('HMGET', KEYS[1], 'source', 'follow_page', 'site')
  if ((owned[1] or 'editor') == 'editor' and owned[2] ~= '1')
      or (ARGV[9] ~= '' and (owned[3] or ARGV[9]) ~= ARGV[9]) then
    return {'kept'}
  end
end
local previous = redis.call('HGET', KEYS[1], 'section') or ''
if existed == 0 then redis.call('HSET', KEYS[1], 'created_at', ARGV[6]) end
redis.call('HSET', KEYS[1], 'title', ARGV[1], 'url', ARGV[2], 'section', ARGV[3],
  'published_at', ARGV[4], 'tags', ARGV[5], 'updated_at', ARGV[6], 'source', ARGV[11])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'site', ARGV[9]) end
if ARGV[10] == '-' then redis.call('HDEL', KEYS[1], 'reactions')
elseif ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'reactions', ARGV[10]) end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'verified_at', ARGV[12]) end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[1], 'follow_page', ARGV[13]) end
local action = 'updated'
if existed == 0 then action = 'created' end
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[7], '*',
  'type', 'article.' .. action, 'article', ARGV[8])
return {1 - existed, previous,
  unpack(redis.call('HMGET', KEYS[1], 'created_at', 'site', 'reactions', 'verified_at',
    'follow_page'))}
"""


SET_LINKS = _LUA_STATUSES + """
-- Replace an article's curated related links.
-- KEYS[1] article hash (must exist)   KEYS[2] links string
-- ARGV[1] links JSON [{id,title,url}]
-- Returns {CHANGED, previous links JSON or ''} or {UnknownArticle}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {UnknownArticle} end
local previous = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[1])
return {CHANGED, previous}
"""

_LUA_FIND_LINK = """
local function find_link(links_key, link_id)
  local raw = redis.call('GET', links_key)
  if not raw then return nil end
  for _, link in ipairs(cjson.decode(raw)) do
    if link.id == link_id then return link.url end
  end
  return nil
end
"""

CLICK_LINK = _LUA_STATUSES + _LUA_THROTTLE + _LUA_FIND_LINK + """
-- Resolve a link id to its stored URL and count one click, at most one per address
-- group per link per window and a budget per wider network; a click not counted is
-- counted as refused, and why.
-- KEYS[1] links string   KEYS[2] linkstats hash   KEYS[3] hour bucket
-- KEYS[4] day bucket     KEYS[5] events stream    KEYS[6] credits hash
-- KEYS[7] clicks string (group, link)
-- KEYS[8..] clicks strings of the address's wider networks on the link (none or more)
-- ARGV[1] link id   ARGV[2] '' to count it, else why not ('bot' | 'prefetch')
-- ARGV[3] hour bucket ttl (s)   ARGV[4] day bucket ttl (s)
-- ARGV[5] oldest event id to keep (ms)   ARGV[6] article id   ARGV[7] window (s)
-- ARGV[8] click limits, comma-joined: KEYS[7]'s (1), then KEYS[8..]'s
-- ARGV[9] the reader to credit a counted click to, or '' (the event never names them:
--         the aggregator files it from KEYS[6], store/readers.py)
-- Returns {CHANGED, url} for a counted click, {UNCHANGED, url, why} for one not counted,
-- or {UnknownLink} when the article no longer has this link.
local url = find_link(KEYS[1], ARGV[1])
if not url then return {UnknownLink} end
local hour_ttl, day_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local why = ARGV[2]
if why == '' then
  local wait, first = spend(budgets(7, 8, ARGV[8]), tonumber(ARGV[7]))
  if first == 1 then why = 'duplicate' elseif wait > 0 then why = 'throttled' end
end
if why ~= '' then
  bump(KEYS[3], KEYS[4], 'refused:clicks_' .. why, hour_ttl, day_ttl)
  return {UNCHANGED, url, why}
end
redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':clicks', 1)
bump(KEYS[3], KEYS[4], 'click', hour_ttl, day_ttl)
bump(KEYS[3], KEYS[4], 'click:' .. ARGV[1], hour_ttl, day_ttl)
local id = redis.call('XADD', KEYS[5], 'MINID', '~', ARGV[5], '*',
  'type', 'link.click', 'article', ARGV[6], 'link', ARGV[1], 'hour', stamp(KEYS[3]))
if ARGV[9] ~= '' then redis.call('HSET', KEYS[6], id, ARGV[9]) end
return {CHANGED, url}
"""

COUNT_IMPRESSIONS = _LUA_STATUSES + _LUA_THROTTLE + _LUA_FIND_LINK + """
-- Count one viewable impression for each named link the article still has, up to a cap
-- per address group per link per window; those over it are counted as refused.
-- KEYS[1] article hash (must exist)   KEYS[2] links string   KEYS[3] linkstats hash
-- KEYS[4] hour bucket   KEYS[5] day bucket   KEYS[6] events stream
-- KEYS[7] seen hash (this address: link id -> impressions in the window)
-- ARGV[1] hour bucket ttl (s)   ARGV[2] day bucket ttl (s)
-- ARGV[3] oldest event id to keep (ms)   ARGV[4] article id   ARGV[5] cap
-- ARGV[6] window (s)   ARGV[7..] link ids
-- Returns {CHANGED, counted, over the cap} or {UnknownArticle}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {UnknownArticle} end
local hour_ttl, day_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local cap = tonumber(ARGV[5])
local counted, over = 0, 0
for i = 7, #ARGV do
  if find_link(KEYS[2], ARGV[i]) then
    if redis.call('HINCRBY', KEYS[7], ARGV[i], 1) > cap then
      over = over + 1
    else
      counted = counted + 1
      redis.call('HINCRBY', KEYS[3], ARGV[i] .. ':imps', 1)
      bump(KEYS[4], KEYS[5], 'imp', hour_ttl, day_ttl)
      bump(KEYS[4], KEYS[5], 'imp:' .. ARGV[i], hour_ttl, day_ttl)
      redis.call('XADD', KEYS[6], 'MINID', '~', ARGV[3], '*',
        'type', 'link.impression', 'article', ARGV[4], 'link', ARGV[i], 'hour', stamp(KEYS[4]))
    end
  end
end
-- The window starts with the address's first impression here; it is not extended.
if redis.call('TTL', KEYS[7]) < 0 then redis.call('EXPIRE', KEYS[7], tonumber(ARGV[6])) end
if over > 0 then
  redis.call('HINCRBY', KEYS[4], 'refused:impressions_over_cap', over)
  redis.call('EXPIRE', KEYS[4], hour_ttl)
  redis.call('HINCRBY', KEYS[5], 'refused:impressions_over_cap', over)
  redis.call('EXPIRE', KEYS[5], day_ttl)
end
return {CHANGED, counted, over}
"""

# Split a comma-joined list of option ids; shared by the poll scripts.
_LUA_SPLIT = """
local function split(s)
  local out = {}
  for item in string.gmatch(s or '', '[^,]+') do out[#out + 1] = item end
  return out
end
local function is_closed(status, closes_ms, now)
  return status ~= 'open' or (closes_ms ~= nil and closes_ms ~= false and closes_ms ~= ''
    and now >= tonumber(closes_ms))
end
"""

CREATE_POLL = _LUA_STATUSES + _LUA_SPLIT + """
-- Create a poll under a fresh id and log it; an id already in use is refused.
-- KEYS[1] poll hash   KEYS[2] counts hash   KEYS[3] voters hash   KEYS[4] events stream
-- ARGV[1] JSON object of the poll's fields (string values)
-- ARGV[2] oldest event id to keep (ms)   ARGV[3] poll id   ARGV[4] article id ('' none)
-- Returns {CHANGED} or {IdTaken}.
if redis.call('EXISTS', KEYS[1]) == 1 then return {IdTaken} end
-- Leftovers of a deleted poll under the same id must not count for the new one.
redis.call('DEL', KEYS[2], KEYS[3])
for field, value in pairs(cjson.decode(ARGV[1])) do
  redis.call('HSET', KEYS[1], field, value)
end
redis.call('PERSIST', KEYS[4])
redis.call('XADD', KEYS[4], 'MINID', '~', ARGV[2], '*',
  'type', 'poll.created', 'poll', ARGV[3], 'article', ARGV[4])
return {CHANGED}
"""

VOTE_POLL = _LUA_STATUSES + _LUA_THROTTLE + _LUA_SPLIT + """
-- Cast, change or withdraw one reader's vote in one poll.
-- KEYS[1] poll hash (must exist)   KEYS[2] counts hash   KEYS[3] voters hash
-- KEYS[4] throttle string (this address group)   KEYS[5] events stream
-- KEYS[6] hour bucket   KEYS[7] day bucket
-- KEYS[8..] throttle strings of the address's wider networks (none or more)
-- ARGV[1] reader hash   ARGV[2] option ids, comma-joined in option order ('' withdraws)
-- ARGV[3] now (epoch ms)   ARGV[4] throttle limits, comma-joined: KEYS[4]'s, then
-- KEYS[8..]'s   ARGV[5] throttle window (s)
-- ARGV[6] hour bucket ttl (s)   ARGV[7] day bucket ttl (s)
-- ARGV[8] oldest event id to keep (ms)   ARGV[9] poll id
-- ARGV[10] '1' logs the event without the reader (an erasure's withdrawal), else ''
-- Returns {CHANGED or UNCHANGED, mine, n, <n counts items>, <poll hash items>}, or
-- {UnknownPoll}, {Throttled, retry_after}, {PollClosed},
-- {InvalidOptions, 'unknown'|'single'|'max'}.
-- A repeated vote and a throttled one are counted as refused in the buckets.
if redis.call('EXISTS', KEYS[1]) == 0 then return {UnknownPoll} end
local meta = redis.call('HMGET', KEYS[1],
  'status', 'closes_ms', 'option_ids', 'multiple', 'max_choices', 'article')
if is_closed(meta[1], meta[2], tonumber(ARGV[3])) then return {PollClosed} end
local new = ARGV[2]
local picked = split(new)
if #picked > 0 then
  local known = {}
  for _, id in ipairs(split(meta[3])) do known[id] = true end
  for _, id in ipairs(picked) do
    if not known[id] then return {InvalidOptions, 'unknown'} end
  end
  if meta[4] ~= '1' and #picked > 1 then return {InvalidOptions, 'single'} end
  if #picked > tonumber(meta[5]) then return {InvalidOptions, 'max'} end
end
local function reply(status, mine)
  local out = {status, mine}
  local counts = redis.call('HGETALL', KEYS[2])
  out[#out + 1] = #counts
  for _, v in ipairs(counts) do out[#out + 1] = v end
  for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
  return out
end
local hour_ttl, day_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local old = redis.call('HGET', KEYS[3], ARGV[1]) or ''
if old == new then
  if new ~= '' then bump(KEYS[6], KEYS[7], 'refused:poll_votes_duplicate', hour_ttl, day_ttl) end
  return reply(UNCHANGED, old)
end
local wait = spend(budgets(4, 8, ARGV[4]), tonumber(ARGV[5]))
if wait > 0 then
  bump(KEYS[6], KEYS[7], 'refused:poll_votes_throttled', hour_ttl, day_ttl)
  return {Throttled, wait}
end
local before, after = {}, {}
for _, id in ipairs(split(old)) do before[id] = true end
for _, id in ipairs(picked) do after[id] = true end
-- A change only moves the ticks that differ, so the buckets show real movement.
for _, id in ipairs(split(old)) do
  if not after[id] then
    redis.call('HINCRBY', KEYS[2], id, -1)
    bump(KEYS[6], KEYS[7], '-' .. id, hour_ttl, day_ttl)
  end
end
for _, id in ipairs(picked) do
  if not before[id] then
    redis.call('HINCRBY', KEYS[2], id, 1)
    bump(KEYS[6], KEYS[7], '+' .. id, hour_ttl, day_ttl)
  end
end
local action = 'change'
if new == '' then
  action = 'withdraw'
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HINCRBY', KEYS[2], '_voters', -1)
else
  redis.call('HSET', KEYS[3], ARGV[1], new)
  bump(KEYS[6], KEYS[7], 'votes', hour_ttl, day_ttl)
  if old == '' then
    action = 'vote'
    redis.call('HINCRBY', KEYS[2], '_voters', 1)
  end
end
redis.call('XADD', KEYS[5], 'MINID', '~', ARGV[8], '*',
  'type', 'poll.' .. action, 'poll', ARGV[9], 'article', meta[6] or '',
  'options', new, 'previous', old, 'reader', ARGV[10] == '1' and '' or ARGV[1])
return reply(CHANGED, new)
"""

PATCH_POLL = _LUA_STATUSES + _LUA_SPLIT + """
-- Close, reopen, reschedule or edit a poll, judged against the stored state.
-- KEYS[1] poll hash (must exist)   KEYS[2] events stream
-- ARGV[1] now (epoch ms)   ARGV[2] new status ('' keeps it)
-- ARGV[3] closes_at: '' keeps it, '-' clears it, else the ISO time
-- ARGV[4] closes_at in epoch ms (with an ISO ARGV[3])
-- ARGV[5] JSON object of edited fields (question, results, min_votes; string values)
-- ARGV[6] updated_at (ISO)   ARGV[7] oldest event id to keep (ms)   ARGV[8] poll id
-- Returns {CHANGED or UNCHANGED, <poll hash items>}, or {UnknownPoll}, {PollFinal}
-- editing a closed poll, {ClosesAtPassed} reopening while closes_at is past.
if redis.call('EXISTS', KEYS[1]) == 0 then return {UnknownPoll} end
local now = tonumber(ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
local closes_at = redis.call('HGET', KEYS[1], 'closes_at') or ''
local closes_ms = redis.call('HGET', KEYS[1], 'closes_ms') or ''
local was_closed = is_closed(status, closes_ms, now)
local new_status, new_closes_at, new_closes_ms = status, closes_at, closes_ms
if ARGV[2] ~= '' then new_status = ARGV[2] end
if ARGV[3] == '-' then
  new_closes_at, new_closes_ms = '', ''
elseif ARGV[3] ~= '' then
  new_closes_at, new_closes_ms = ARGV[3], ARGV[4]
end
local edits = cjson.decode(ARGV[5])
-- A closed poll's results are final: only reopening it allows editing it again.
if next(edits) ~= nil and was_closed and ARGV[2] ~= 'open' then return {PollFinal} end
local now_closed = is_closed(new_status, new_closes_ms, now)
if ARGV[2] == 'open' and now_closed then return {ClosesAtPassed} end
local changed = new_status ~= status or new_closes_ms ~= closes_ms
for field, value in pairs(edits) do
  if redis.call('HGET', KEYS[1], field) ~= value then
    changed = true
    redis.call('HSET', KEYS[1], field, value)
  end
end
if not changed then
  return {UNCHANGED, unpack(redis.call('HGETALL', KEYS[1]))}
end
redis.call('HSET', KEYS[1], 'status', new_status, 'closes_at', new_closes_at,
  'closes_ms', new_closes_ms, 'updated_at', ARGV[6])
local action = 'updated'
if now_closed and not was_closed then action = 'closed' end
if was_closed and not now_closed then action = 'opened' end
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[7], '*',
  'type', 'poll.' .. action, 'poll', ARGV[8],
  'article', redis.call('HGET', KEYS[1], 'article') or '', 'status', new_status)
return {CHANGED, unpack(redis.call('HGETALL', KEYS[1]))}
"""

DELETE_POLL = _LUA_STATUSES + """
-- Delete a poll and its votes; its event stream keeps the deletion and then expires.
-- KEYS[1] poll hash   KEYS[2] counts hash   KEYS[3] voters hash   KEYS[4] events stream
-- ARGV[1] oldest event id to keep (ms)   ARGV[2] poll id   ARGV[3] stream lifetime (s)
-- Returns {CHANGED, article id or ''} or {UnknownPoll}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {UnknownPoll} end
local article = redis.call('HGET', KEYS[1], 'article') or ''
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('XADD', KEYS[4], 'MINID', '~', ARGV[1], '*',
  'type', 'poll.deleted', 'poll', ARGV[2], 'article', article)
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
return {CHANGED, article}
"""

CLAIM_WEBHOOK_RETRIES = """
-- KEYS[1] webhook retry zset (member = delivery JSON, score = due time, epoch s)
-- ARGV[1] now   ARGV[2] lease end (epoch s)   ARGV[3] most members to take
-- Returns the due members, each pushed to the lease end first, so a worker that dies
-- while sending leaves the delivery to be retried when the lease ends, not lost.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"""

# A sorted set of entries beside a hash of their details, held to a bound: past it the
# oldest entries go, from both.
_KEEP_NEWEST = """
local function keep_newest(zset, details, bound)
  local over = redis.call('ZCARD', zset) - bound
  if over > 0 then
    local popped = redis.call('ZPOPMIN', zset, over)
    for i = 1, #popped, 2 do redis.call('HDEL', details, popped[i]) end
  end
  return 1
end
"""

ENQUEUE_PENDING = _KEEP_NEWEST + """
-- Queue an unknown article id a reader's page named, for the worker to verify, within a
-- bound per site: past it the oldest waiting entries are dropped, so a flood of made-up
-- ids holds Redis at the bound. An id already waiting, or failed within the retry time,
-- is not queued again.
-- KEYS[1] pending zset (id -> when it may be taken, epoch s)   KEYS[2] pending URLs hash
-- KEYS[3] failed zset (id -> when it failed, epoch s)
-- ARGV[1] article id   ARGV[2] page URL   ARGV[3] now (epoch s)   ARGV[4] bound
-- ARGV[5] seconds before a failed id is tried again
-- Returns 1 when queued, 0 when not.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local failed = redis.call('ZSCORE', KEYS[3], ARGV[1])
if failed and tonumber(failed) > tonumber(ARGV[3]) - tonumber(ARGV[5]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return keep_newest(KEYS[1], KEYS[2], tonumber(ARGV[4]))
"""

CLAIM_PENDING = """
-- Take the newest waiting entries for verification, each leased (its score moved to the
-- lease end) so a worker that dies while fetching leaves it to be taken again.
-- KEYS[1] pending zset   KEYS[2] pending URLs hash
-- ARGV[1] now (epoch s)   ARGV[2] lease end (epoch s)   ARGV[3] most entries to take
-- Returns {id, url, id, url, ...}. Newest first: under a flood of made-up ids, a real
-- page's latest read is near the top.
local taken = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf',
  'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(taken) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
"""

NOTE_FAILURE = _KEEP_NEWEST + """
-- Record why a page or feed could not be verified, keeping the newest `bound` per site.
-- KEYS[1] failed zset (key -> when, epoch s)   KEYS[2] failures hash (key -> JSON)
-- ARGV[1] key (article id or URL)   ARGV[2] JSON {url, reason, message, at}
-- ARGV[3] now (epoch s)   ARGV[4] bound
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return keep_newest(KEYS[1], KEYS[2], tonumber(ARGV[4]))
"""

CLOSE_AT_DEADLINE = _LUA_STATUSES + """
-- Record `poll.closed` once when an open poll's closes_at has passed.
-- KEYS[1] poll hash   KEYS[2] events stream
-- ARGV[1] now (epoch ms)   ARGV[2] oldest event id to keep (ms)   ARGV[3] poll id
-- Returns {CHANGED} when it recorded the event; {UNCHANGED} when the poll is closed by
-- an editor, not due, or its deadline was already recorded; {UnknownPoll}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {UnknownPoll} end
local meta = redis.call('HMGET', KEYS[1], 'status', 'closes_ms', 'closed_logged', 'article')
local closes_ms = meta[2]
if meta[1] ~= 'open' or not closes_ms or closes_ms == ''
    or tonumber(ARGV[1]) < tonumber(closes_ms) or meta[3] == closes_ms then
  return {UNCHANGED}
end
-- Keyed by the deadline: a poll reopened with a new closes_at is recorded again.
redis.call('HSET', KEYS[1], 'closed_logged', closes_ms)
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*',
  'type', 'poll.closed', 'poll', ARGV[3], 'article', meta[4] or '', 'status', 'closed')
return {CHANGED}
"""

# formulas.rank_keys in Lua, for the aggregate scripts, which key an article as they
# change its counts: exact integers, so a sorted set's order is the formula's order with
# ties broken by article id. Its constants come from formulas.py; test_aggregates.py
# checks that both give the same keys.
LUA_RANKING = f"""
local Z = {formulas.Z95!r}
local STEPS, CAP, SHIFT = {formulas.SCORE_STEPS}, {formulas.TOTAL_CAP}, {formulas.VOTES_SHIFT}
""" + """

-- The ranking sets, as formulas.rank_keys orders its keys.
local RANKS = {'approval', 'votes', 'worst'}

-- The Wilson bound of pos/n: side -1 the lower, 1 the upper.
local function wilson(pos, n, side)
  if n <= 0 then return nil end
  local p = pos / n
  local z2 = Z * Z
  local centre = p + z2 / (2 * n)
  local margin = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
  return math.min(1, math.max(0, (centre + side * margin) / (1 + z2 / n)))
end

local function num(x) return string.format('%.0f', x) end

-- counts: the article's reactions per configured choice, first choice first.
local function rank_into(prefix, a, sec, counts)
  local total, yes = 0, 0
  for i, n in ipairs(counts) do
    n = math.max(0, n)
    total = total + n
    if i == 1 then yes = n end
  end
  local w = wilson(yes, total, -1)
  local capped = math.min(total, CAP)
  local ranked = {1, 0, 1}
  if w then
    local q = math.floor(w * STEPS)
    local up = STEPS - math.floor(wilson(yes, total, 1) * STEPS)
    ranked = {-(q * (CAP + 1) + capped), -(capped * SHIFT + q), -(up * (CAP + 1) + capped)}
  end
  local suffixes = {''}
  if sec and sec ~= '' then suffixes[2] = ':s:' .. sec end
  for _, suffix in ipairs(suffixes) do
    for i, r in ipairs(RANKS) do
      redis.call('ZADD', prefix .. ':rank:' .. r .. suffix, num(ranked[i]), a)
    end
  end
end

-- Rank an article from its counts under `prefix`: hashes all time (read with HGET), a
-- rolling window's sorted sets (ZSCORE), as ZUNIONSTORE builds them.
local function rank_from(prefix, read, a, sec, choices)
  local counts = {}
  for i, c in ipairs(choices) do
    counts[i] = tonumber(redis.call(read, prefix .. ':n:' .. c, a) or '0')
  end
  rank_into(prefix, a, sec, counts)
end

-- File a member of a rolling window under its section's sets (`articles` counts them).
local function window_file(wb, a, sec)
  redis.call('ZADD', wb .. ':ids', 0, a)
  if sec and sec ~= '' then
    if redis.call('ZADD', wb .. ':ids:s:' .. sec, 0, a) == 1 then
      redis.call('HINCRBY', wb .. ':sectot', sec .. '\\tarticles', 1)
    end
    redis.call('SADD', wb .. ':secs', sec)
  end
end

-- The window's section sums: per choice the articles' counts, each never below zero
-- (as a ranking shows them), so a change adds the difference it makes to that.
local function window_count(wb, a, sec, field, by)
  local old = tonumber(redis.call('ZSCORE', wb .. ':' .. field, a) or '0')
  redis.call('ZINCRBY', wb .. ':' .. field, by, a)
  local name = field
  if string.sub(field, 1, 2) == 'n:' then
    name = 'c:' .. string.sub(field, 3)
    by = math.max(0, old + by) - math.max(0, old)
  end
  if by ~= 0 and sec and sec ~= '' then
    redis.call('HINCRBY', wb .. ':sectot', sec .. '\\t' .. name, by)
  end
end

-- What an article adds to its section's sums in a window: {sum name -> n}.
local function window_share(wb, a, choices)
  local share = {}
  for _, c in ipairs(choices) do
    local n = tonumber(redis.call('ZSCORE', wb .. ':n:' .. c, a) or '0')
    if n > 0 then share['c:' .. c] = n end
  end
  for _, f in ipairs({'click', 'imp'}) do
    local n = tonumber(redis.call('ZSCORE', wb .. ':' .. f, a) or '0')
    if n ~= 0 then share[f] = n end
  end
  return share
end
"""

AGGREGATE = LUA_RANKING + """
-- Apply event-stream entries to the cross-article aggregates, each entry exactly once.
-- KEYS[1] applied-position hash (stream key -> last applied entry id). Every other key
-- is built from ARGV[1] and carries KEYS[1]'s hash tag (one slot on a cluster).
-- ARGV[1] aggregate key base   ARGV[2] configured choices, comma-joined
-- ARGV[3] hour bucket ttl (s)   ARGV[4] day bucket ttl (s)   ARGV[5] feed length (0: none)
-- ARGV[6] JSON [[stream, from id, [[id, type, article, section, hour stamp, choice,
--         previous, feed field, value, ...], ...]], ...]
-- ARGV[7] rolling window names, comma-joined (their sets are <base>:w:<name>:...)
-- ARGV[8] JSON {article: [its site's key base, its choices comma-joined (the approving
--         one first), 1 when they are its own set]}; an article not named is counted
--         under ARGV[1] with ARGV[2]
-- A stream's entries apply only when `from id` is the position stored for it, so two
-- aggregators (or one and a rebuild) never apply an entry twice. An entry also counts
-- in each rolling window whose first hour (its meta `from`) is not after its own hour.
-- Returns the streams whose stored position differed (the caller re-reads it).
local F = ARGV[1]
local hour_ttl, day_ttl, feed_len = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local owners = cjson.decode(ARGV[8])

-- Each site's figures live under its own key base; T, choices and windows are those of
-- the article being applied (`use`).
local T, choices, windows
local site_windows, sets = {}, {}
local function split(text)
  local out = {}
  for c in string.gmatch(text, '[^,]+') do out[#out + 1] = c end
  return out
end
local function use(a)
  local owner = owners[a] or {F, ARGV[2], 0}
  T = owner[1]
  if not sets[a] then
    sets[a] = {base = T, choices = split(owner[2])}
    if owner[3] == 1 then redis.call('HSET', T .. ':own', a, owner[2])
    else redis.call('HDEL', T .. ':own', a) end
  end
  choices = sets[a].choices
  if not site_windows[T] then
    local found = {}
    for name in string.gmatch(ARGV[7], '[^,]+') do
      local wb = T .. ':w:' .. name
      local from = redis.call('HGET', wb .. ':meta', 'from')
      if from then found[#found + 1] = {base = wb, from = from, ranked = {}} end
    end
    site_windows[T] = found
  end
  windows = site_windows[T]
end

local function rank(a, sec)
  rank_from(T, 'HGET', a, sec, choices)
end

local function contribute(a, sec, sign)
  local tot = T .. ':sectot'
  redis.call('HINCRBY', tot, sec .. '\\tarticles', sign)
  for _, c in ipairs(choices) do
    local n = tonumber(redis.call('HGET', T .. ':n:' .. c, a) or '0')
    if n ~= 0 then redis.call('HINCRBY', tot, sec .. '\\tc:' .. c, sign * n) end
  end
  for _, f in ipairs({'click', 'imp'}) do
    local n = tonumber(redis.call('HGET', T .. ':' .. f, a) or '0')
    if n ~= 0 then redis.call('HINCRBY', tot, sec .. '\\t' .. f, sign * n) end
  end
end

-- Move an article's window figures from section `old` to `sec` (a pending article is
-- filed later by file_window, under the section it reads then).
local function window_move(w, a, old, sec)
  if redis.call('ZSCORE', w.base .. ':pending', a) then return end
  for name, n in pairs(window_share(w.base, a, choices)) do
    redis.call('HINCRBY', w.base .. ':sectot', old .. '\\t' .. name, -n)
    redis.call('HINCRBY', w.base .. ':sectot', sec .. '\\t' .. name, n)
  end
  if redis.call('ZREM', w.base .. ':ids:s:' .. old, a) == 1 then
    redis.call('HINCRBY', w.base .. ':sectot', old .. '\\tarticles', -1)
    for _, r in ipairs(RANKS) do redis.call('ZREM', w.base .. ':rank:' .. r .. ':s:' .. old, a) end
    window_file(w.base, a, sec)
    w.ranked[a] = true
  end
end

-- File the article under `sec` (its current section); returns the section it is under.
local function place(a, sec)
  local old = redis.call('HGET', T .. ':sec', a)
  if sec == '' or old == sec then return old end
  if old then
    contribute(a, old, -1)
    for _, r in ipairs(RANKS) do redis.call('ZREM', T .. ':rank:' .. r .. ':s:' .. old, a) end
    redis.call('ZREM', T .. ':ids:s:' .. old, a)
    for _, w in ipairs(windows) do window_move(w, a, old, sec) end
  else
    redis.call('ZADD', T .. ':ids', 0, a)
  end
  redis.call('HSET', T .. ':sec', a, sec)
  contribute(a, sec, 1)
  redis.call('ZADD', T .. ':ids:s:' .. sec, 0, a)
  rank(a, sec)
  return sec
end

-- Set once per call, not per entry: the ttls, the rankings and the filing.
local ttls, ranked, placed = {}, {}, {}
local function bucket(stamp, field, by, a)
  local hour = T .. ':h:' .. stamp .. ':' .. field
  local day = T .. ':d:' .. string.sub(stamp, 1, 8) .. ':' .. field
  redis.call('ZINCRBY', hour, by, a)
  redis.call('ZINCRBY', day, by, a)
  ttls[hour], ttls[day] = hour_ttl, day_ttl
end

-- Count in every rolling window that covers the entry's hour.
-- An article a roll left pending only gets its sums: `file_window` does the rest.
local function windowed(stamp, a, sec, field, by)
  for _, w in ipairs(windows) do
    if stamp >= w.from then
      local voted = string.sub(field, 1, 2) == 'n:'
      if redis.call('ZSCORE', w.base .. ':pending', a) then
        redis.call('ZINCRBY', w.base .. ':' .. field, by, a)
        if voted then redis.call('ZADD', w.base .. ':ids', 0, a) end
      else
        window_count(w.base, a, sec, field, by)
        if voted then
          window_file(w.base, a, sec)
          w.ranked[a] = true
        end
      end
    end
  end
end

local function counter(a, sec, field, by)
  redis.call('HINCRBY', T .. ':' .. field, a, by)
  redis.call('HINCRBY', T .. ':sectot', sec .. '\\t' .. field, by)
end

local function apply(e)
  local kind, a, stamp = e[2], e[3], e[5]
  if a == '' then return end
  local family = string.match(kind, '^([^.]*)')
  if family ~= 'article' and family ~= 'reaction' and family ~= 'link' then return end
  use(a)
  local sec = placed[a]
  if not sec or (e[4] ~= '' and e[4] ~= sec) then
    sec = place(a, e[4])
    if not sec then return end -- an article the aggregates have never seen filed
    placed[a] = sec
  end
  if family == 'reaction' then
    local choice, previous = e[6], e[7]
    local delta = {}
    if previous ~= '' then delta[previous] = -1 end
    if choice ~= '' then
      delta[choice] = (delta[choice] or 0) + 1
      bucket(stamp, 'cast', 1, a)
    end
    for c, by in pairs(delta) do
      redis.call('HINCRBY', T .. ':n:' .. c, a, by)
      redis.call('HINCRBY', T .. ':sectot', sec .. '\\tc:' .. c, by)
      bucket(stamp, 'n:' .. c, by, a)
      windowed(stamp, a, sec, 'n:' .. c, by)
    end
    ranked[a] = true
  elseif kind == 'link.click' then
    counter(a, sec, 'click', 1)
    bucket(stamp, 'click', 1, a)
    windowed(stamp, a, sec, 'click', 1)
  elseif kind == 'link.impression' then
    counter(a, sec, 'imp', 1)
    bucket(stamp, 'imp', 1, a)
    windowed(stamp, a, sec, 'imp', 1)
  end
end

local stale = {}
for _, item in ipairs(cjson.decode(ARGV[6])) do
  local stream, from, entries = item[1], item[2], item[3]
  if (redis.call('HGET', KEYS[1], stream) or '0-0') ~= from then
    stale[#stale + 1] = stream
  elseif #entries > 0 then
    for _, e in ipairs(entries) do
      apply(e)
      if feed_len > 0 then
        local fields = {'src', e[1]}
        for i = 8, #e do fields[#fields + 1] = e[i] end
        redis.call('XADD', F .. ':feed', 'MAXLEN', '~', feed_len, '*', unpack(fields))
      end
    end
    redis.call('HSET', KEYS[1], stream, entries[#entries][1])
  end
end
for a in pairs(ranked) do
  use(a)
  rank(a, placed[a])
end
for base, found in pairs(site_windows) do
  for _, w in ipairs(found) do
    for a in pairs(w.ranked) do rank_from(w.base, 'ZSCORE', a, placed[a], sets[a].choices) end
  end
end
for key, ttl in pairs(ttls) do redis.call('EXPIRE', key, ttl) end
return stale
"""

ROLL_WINDOW = LUA_RANKING + """
-- Recompute one rolling window (e.g. the last 7 days) from the hour and day sets that
-- cover it, when its first hour moves on; the aggregate script keeps it up to date after.
-- KEYS[1] the window's meta hash (`from`: first hour covered, YYYYMMDDHH)
-- ARGV[1] the site's aggregate key base   ARGV[2] every choice its articles count,
-- comma-joined (the site's set and its articles' own sets)
-- ARGV[3] the window's key base (<aggregate base>:w:<name>)   ARGV[4] first hour covered
-- ARGV[5..] the covering buckets, as `h:<YYYYMMDDHH>` or `d:<YYYYMMDD>`
-- Sums <window>:n:<choice>, :click and :imp (article -> sum over the window) and :ids (the
-- articles that received votes in it, score 0) in one go. Filing each article under its
-- section, ranking it and its section sums (:ids:s:<section>, :rank:*, :sectot, :secs)
-- are left to `file_window`, a bounded batch at a time, so Redis never runs one long
-- script; :pending holds the articles still to file, and readers wait for it to empty.
-- Returns how many articles are pending.
local T, wb = ARGV[1], ARGV[3]
local choices = {}
for c in string.gmatch(ARGV[2], '[^,]+') do choices[#choices + 1] = c end
for _, sec in ipairs(redis.call('SMEMBERS', wb .. ':secs')) do
  redis.call('DEL', wb .. ':ids:s:' .. sec)
  for _, r in ipairs(RANKS) do redis.call('DEL', wb .. ':rank:' .. r .. ':s:' .. sec) end
end
for _, r in ipairs(RANKS) do redis.call('DEL', wb .. ':rank:' .. r) end
redis.call('DEL', wb .. ':secs', wb .. ':ids', wb .. ':sectot', wb .. ':pending')

local fields = {}
for _, c in ipairs(choices) do fields[#fields + 1] = 'n:' .. c end
fields[#fields + 1] = 'click'
fields[#fields + 1] = 'imp'
for _, f in ipairs(fields) do
  local sources = {}
  for i = 5, #ARGV do sources[#sources + 1] = T .. ':' .. ARGV[i] .. ':' .. f end
  redis.call('DEL', wb .. ':' .. f)
  if #sources > 0 then
    redis.call('ZUNIONSTORE', wb .. ':' .. f, #sources, unpack(sources))
  end
end

local args = {}
for _, c in ipairs(choices) do args[#args + 1] = wb .. ':n:' .. c end
args[#args + 1] = 'WEIGHTS'
for _ = 1, #choices do args[#args + 1] = 0 end
redis.call('ZUNIONSTORE', wb .. ':ids', #choices, unpack(args))
-- Every article with a figure in the window waits to be filed: voters and link activity.
redis.call('ZUNIONSTORE', wb .. ':pending', 3, wb .. ':ids', wb .. ':click', wb .. ':imp',
           'WEIGHTS', 0, 0, 0)
redis.call('HSET', KEYS[1], 'from', ARGV[4])
return redis.call('ZCARD', wb .. ':pending')
"""

FILE_WINDOW = LUA_RANKING + """
-- File up to ARGV[4] of a rolled window's pending articles: section sets, rankings and
-- section sums, from the window's sums as they stand now (the aggregate script leaves
-- pending articles to this script, so nothing is counted twice).
-- KEYS[1] the window's pending set (<window>:pending)
-- ARGV[1] the site's aggregate key base   ARGV[2] the site's choices, comma-joined (an
-- article with its own set, in <base>:own, is ranked by that)
-- ARGV[3] the window's key base   ARGV[4] how many articles to file
-- Returns how many articles are still pending.
local T, wb = ARGV[1], ARGV[3]
local choices = {}
for c in string.gmatch(ARGV[2], '[^,]+') do choices[#choices + 1] = c end
for _, a in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)) do
  redis.call('ZREM', KEYS[1], a)
  local sec = redis.call('HGET', T .. ':sec', a) or ''
  local own = redis.call('HGET', T .. ':own', a)
  local set = choices
  if own then
    set = {}
    for c in string.gmatch(own, '[^,]+') do set[#set + 1] = c end
  end
  if redis.call('ZSCORE', wb .. ':ids', a) then
    window_file(wb, a, sec)
    rank_from(wb, 'ZSCORE', a, sec, set)
  end
  if sec ~= '' then
    for name, n in pairs(window_share(wb, a, choices)) do
      redis.call('HINCRBY', wb .. ':sectot', sec .. '\\t' .. name, n)
    end
  end
end
return redis.call('ZCARD', KEYS[1])
"""

ALERT_TRANSITION = """
-- Move one alert rule's subject to firing (or back), and queue the note of it, at once:
-- of any number of workers that see the same condition, one queues it, once.
-- KEYS[1] alert state hash   KEYS[2] pending notes hash   KEYS[3] due zset
-- ARGV[1] state field   ARGV[2] 'fire' or 'resolve'   ARGV[3] state value (JSON, firing)
-- ARGV[4] note id   ARGV[5] note (JSON)   ARGV[6] due (epoch s)
-- Returns 1 when it queued the note, 0 when the subject was already in that state.
local firing = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if ARGV[2] == 'fire' then
  if firing then return 0 end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
else
  if not firing then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[4])
return 1
"""

ALL = {
    "vote_reaction": VOTE_REACTION,
    "spend_budget": SPEND_BUDGET,
    "upsert_article": UPSERT_ARTICLE,
    "set_links": SET_LINKS,
    "click_link": CLICK_LINK,
    "count_impressions": COUNT_IMPRESSIONS,
    "create_poll": CREATE_POLL,
    "vote_poll": VOTE_POLL,
    "patch_poll": PATCH_POLL,
    "delete_poll": DELETE_POLL,
    "close_at_deadline": CLOSE_AT_DEADLINE,
    "claim_webhook_retries": CLAIM_WEBHOOK_RETRIES,
    "enqueue_pending": ENQUEUE_PENDING,
    "claim_pending": CLAIM_PENDING,
    "note_failure": NOTE_FAILURE,
    "aggregate": AGGREGATE,
    "roll_window": ROLL_WINDOW,
    "file_window": FILE_WINDOW,
    "alert_transition": ALERT_TRANSITION,
}
