package queue

import "github.com/redis/go-redis/v9"

// The scripts take the time from Redis (TIME), so heartbeats of pods with
// skewed clocks compare correctly. Each script touches only keys in the
// ingress list's slot: KEYS[1] is the workers set, KEYS[2] the ingress list,
// and in-flight lists are built from ARGV[1] (InFlightPrefix) plus worker
// ids, all carrying the same hash tag.

// heartbeatScript registers or refreshes a worker: ARGV[2] = worker id,
// ARGV[3] = heartbeat ttl in ms.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
return now
`)

// moveBackLua moves every item of in-flight list key back to the head of
// the ingress list, keeping their order (the oldest ends up first), and
// returns how many moved.
const moveBackLua = `
local function move_back(key, ingress)
  local n = 0
  while redis.call('LMOVE', key, ingress, 'RIGHT', 'LEFT') do
    n = n + 1
  end
  return n
end
`

// reapLua returns the work of every worker whose heartbeat expired to the
// ingress list, and counts each item's delivery without an outcome in the
// state hash (StateKey), so that a vCon that kills every worker that takes
// it is recognised as a poison pill on its next take. When the dead worker
// was running a suspect alone (field "q:<worker>", see
// Worker.Isolate), only the suspect is blamed: the others waited. Running in one script makes it exactly once, however many
// workers and operators reap at the same time. An expired worker stays
// registered (with its expired score) for retentionMs more: a worker that
// stalled past its heartbeat may still take work before it notices (a
// BLMOVE it had sent completes), and if it is killed then, the next reap
// returns that work too instead of leaving it in a list no reaper reads. A
// worker that resumes refreshes its score and is alive again.
const reapLua = `
local function reap(workers, ingress, prefix, retentionMs, state)
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  local moved = 0
  local dead = redis.call('ZRANGEBYSCORE', workers, '-inf', now, 'WITHSCORES')
  for i = 1, #dead, 2 do
    local id, expired = dead[i], tonumber(dead[i + 1])
    local suspect = redis.call('HGET', state, 'q:' .. id)
    while true do
      local uuid = redis.call('LMOVE', prefix .. id, ingress, 'RIGHT', 'LEFT')
      if not uuid then break end
      if not suspect or suspect == uuid then
        redis.call('HINCRBY', state, 'd:' .. uuid, 1)
      end
      moved = moved + 1
    end
    if suspect then redis.call('HDEL', state, 'q:' .. id) end
    if expired + retentionMs <= now then
      redis.call('ZREM', workers, id)
    end
  end
  return moved
end
`

// reapScript: KEYS[3] is the state hash; returns the number of items
// moved back.
var reapScript = redis.NewScript(reapLua + `
return reap(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), KEYS[3])
`)

// releaseScript returns one worker's in-flight items (ARGV[2] = worker id)
// to the ingress list and unregisters it: a clean shutdown.
var releaseScript = redis.NewScript(moveBackLua + `
local n = move_back(ARGV[1] .. ARGV[2], KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[2])
return n
`)

// promoteLua moves up to limit retries of the set retry that are due at
// now (ms) to the head of the ingress list, the earliest due first in the
// list, and returns how many moved. One script per list: a retry is never
// both waiting and queued, however many workers and operators promote.
const promoteLua = `
local function promote(retry, ingress, now, limit)
  local due = redis.call('ZRANGEBYSCORE', retry, '-inf', now, 'LIMIT', 0, limit)
  for i = #due, 1, -1 do
    redis.call('ZREM', retry, due[i])
    redis.call('LPUSH', ingress, due[i])
  end
  return #due
end
`

// promoteBatch bounds the retries one script moves, so that a large set
// coming due at once never blocks Redis for long; the rest move next time.
const promoteBatch = 500

// promoteScript: KEYS[1] the retry set, KEYS[2] the ingress list.
var promoteScript = redis.NewScript(promoteLua + `
local t = redis.call('TIME')
return promote(KEYS[1], KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), tonumber(ARGV[1]))
`)

// oldestLua measures how long the oldest vCon of an ingress list has
// waited, without producers writing anything beside the uuid: at each
// measurement the list's tail is recorded in a marker set with the time it
// was first seen there. The list is FIFO, so the oldest marker still in
// the list (LPOS, which scans from the head and finds it within the first
// poll's worth of items) was pushed after the head: now minus its time is
// a lower bound of the head's wait, short by at most one measurement
// interval (and by the wait before the first measurement of a backlog).
// Markers no longer in the list are dropped, at most maxChecks per call
// (each such check scans the list); an empty list forgets its markers.
const oldestLua = `
local function oldest_age(list, markers, now, len)
  if len == 0 then
    redis.call('DEL', markers)
    return 0
  end
  local tail = redis.call('LINDEX', list, -1)
  if tail and not redis.call('ZSCORE', markers, tail) then
    redis.call('ZADD', markers, now, tail)
  end
  for i = 1, 8 do
    local m = redis.call('ZRANGE', markers, 0, 0, 'WITHSCORES')
    if #m == 0 then return 0 end
    if redis.call('LPOS', list, m[1]) then
      return now - tonumber(m[2])
    end
    redis.call('ZREM', markers, m[1])
  end
  local m = redis.call('ZRANGE', markers, 0, 0, 'WITHSCORES')
  if #m == 0 then return 0 end
  return now - tonumber(m[2])
end
`

// reapAndMeasureScript reaps and promotes due retries, then returns
// {ingress length, in-flight total, items reaped, retries waiting, ms until
// the next retry is due (-1 when none waits), retries promoted, ms the
// oldest vCon has waited} for one ingress list: the operator's per-list
// observation. KEYS: workers set, ingress list, state hash, retry set, age
// markers.
var reapAndMeasureScript = redis.NewScript(reapLua + promoteLua + oldestLua + `
local reaped = reap(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), KEYS[3])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local promoted = promote(KEYS[4], KEYS[2], now, tonumber(ARGV[3]))
local inflight = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  inflight = inflight + redis.call('LLEN', ARGV[1] .. id)
end
local nextDue = -1
local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if #first == 2 then
  nextDue = math.max(0, tonumber(first[2]) - now)
end
local len = redis.call('LLEN', KEYS[2])
return {len, inflight, reaped, redis.call('ZCARD', KEYS[4]), nextDue, promoted, oldest_age(KEYS[2], KEYS[5], now, len)}
`)
