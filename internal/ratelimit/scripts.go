package ratelimit

import (
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The feedback constants: how a vendor's 429 slows the budget, and how it
// recovers. A cut is multiplicative and at most one per cutEvery, so that
// the burst of 429s one overload produces across a fleet counts once; the
// recovery is additive, so that the budget creeps back up to the
// configured rate instead of jumping into the same wall (AIMD, as TCP
// does). From the floor the budget is back to full in a minute.
const (
	cutFactor      = 0.7
	cutEvery       = time.Second
	minFactor      = 0.05
	recoverPerSec  = 0.02
	waitReportLife = 3 * time.Second
	// fairSlack is how many permits one party may be ahead of the least
	// served waiting party: a little slack keeps a party whose waiter is a
	// moment late from idling the budget.
	fairSlack = 2
	// keyLife bounds how long an idle budget's keys stay in Redis. Every
	// call refreshes it; state older than a minute of idleness describes
	// nothing current (rates refill within a minute).
	keyLife = 10 * time.Minute
)

// luaCommon reads the clock and the vendor feedback factor, recovered for
// the time since the last cut. Redis's own clock serves every process, so
// skewed pod clocks cannot loosen or tighten the budget.
var luaCommon = `
local state, permits, waiting = KEYS[1], KEYS[2], KEYS[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function factor()
  local f = tonumber(redis.call('HGET', state, 'factor'))
  if not f then return 1 end
  local at = tonumber(redis.call('HGET', state, 'fat')) or now
  return math.min(1, f + math.max(now - at, 0) / 1000 * ` + ftoa(recoverPerSec) + `)
end
local function touch()
  for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, ` + itoa(keyLife.Milliseconds()) + `) end
end
-- live waiting reports: member party|holder scored by report time, count in
-- the hash field w:member. Expired reports (a killed process) are dropped.
local function waitingByParty()
  local old = redis.call('ZRANGEBYSCORE', waiting, '-inf', now - ` + itoa(waitReportLife.Milliseconds()) + `)
  for _, m in ipairs(old) do redis.call('HDEL', state, 'w:' .. m) end
  if #old > 0 then redis.call('ZREM', waiting, unpack(old)) end
  local by = {}
  for _, m in ipairs(redis.call('ZRANGE', waiting, 0, -1)) do
    local n = tonumber(redis.call('HGET', state, 'w:' .. m)) or 0
    local p = string.match(m, '^(.*)|[^|]*$') or m
    by[p] = (by[p] or 0) + n
  end
  return by
end
`

// acquireScript grants one permit or says how long to wait. ARGV: rpm,
// tpm, max concurrent, tokens, permit id, lease ms, party, waiter
// (party|holder), waiting (this process's callers, the caller included).
// Reply: {granted, wait ms (-1: until a permit is released), permits in
// use, factor ppm, why}.
var acquireScript = redis.NewScript(luaCommon + `
local rpm, tpm, maxc, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local permit, lease, party, waiter, nwait = ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8], tonumber(ARGV[9])
local f = factor()
local by = waitingByParty()
local returning = (by[party] or 0) == 0
redis.call('ZADD', waiting, now, waiter)
redis.call('HSET', state, 'w:' .. waiter, nwait)
local inuse = 0
if maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
  inuse = redis.call('ZCARD', permits)
end
local function deny(wait, why)
  redis.call('HINCRBY', state, 'denied', 1)
  touch()
  return {0, wait, inuse, math.floor(f * 1000000), why}
end
local blocked = tonumber(redis.call('HGET', state, 'until')) or 0
if blocked > now then return deny(blocked - now, 'retry_after') end
if maxc > 0 and inuse >= maxc then return deny(-1, 'concurrency') end

-- Fairness between parties (Chains): a party more than fairSlack permits
-- ahead of the least served party that is waiting too lets it go first. A
-- party that starts waiting after a pause brings no credit from it.
local vtkey = 'vt:' .. party
local vt = tonumber(redis.call('HGET', state, vtkey)) or 0
local lo
for p, n in pairs(by) do
  if p ~= party and n > 0 then
    local v = tonumber(redis.call('HGET', state, 'vt:' .. p)) or 0
    if not lo or v < lo then lo = v end
  end
end
if lo then
  if returning then vt = math.max(vt, lo - ` + itoa(fairSlack) + `) end
  if vt > lo + ` + itoa(fairSlack) + ` then
    redis.call('HSET', state, vtkey, vt)
    local pace = 50
    if rpm > 0 then pace = math.ceil(60000 / (rpm * f)) end
    return deny(pace, 'fairness')
  end
end

-- GCRA: rtat and ttat are the theoretical arrival times of the next
-- request and the next token. Requests are spaced evenly, as vendors meter
-- per second as well as per minute; a grant up to one interval late does
-- not lose the interval (the next may come that much sooner), so waiters'
-- wake-up latency does not eat the rate, at the price of two at once after
-- a pause. Tokens may run up to a minute ahead, a vendor's token bucket.
local rnew, tnew
if rpm > 0 then
  local interval = 60000 / (rpm * f)
  local tat = tonumber(redis.call('HGET', state, 'rtat')) or 0
  if tat > now then return deny(math.ceil(tat - now), 'requests') end
  rnew = math.max(tat, now - interval) + interval
end
if tpm > 0 and tokens > 0 then
  local tat = math.max(tonumber(redis.call('HGET', state, 'ttat')) or 0, now)
  local cost = math.min(tokens * 60000 / (tpm * f), 60000)
  local over = tat + cost - now - 60000
  if over > 0 then return deny(math.ceil(over), 'tokens') end
  tnew = tat + cost
end
if rnew then redis.call('HSET', state, 'rtat', rnew) end
if tnew then redis.call('HSET', state, 'ttat', tnew) end
if maxc > 0 then
  redis.call('ZADD', permits, now + lease, permit)
  inuse = inuse + 1
end
redis.call('HSET', state, vtkey, vt + 1, 'w:' .. waiter, math.max(nwait - 1, 0))
redis.call('HINCRBY', state, 'granted', 1)
redis.call('HINCRBY', state, 'granted:' .. party, 1)
redis.call('HINCRBY', state, 'tokens', tokens)
touch()
return {1, 0, inuse, math.floor(f * 1000000), 'ok'}
`)

// releaseScript returns a permit and corrects the tokens charged. ARGV:
// permit id (” when none was held), tokens delta (actual - estimate), tpm.
var releaseScript = redis.NewScript(luaCommon + `
if ARGV[1] ~= '' then redis.call('ZREM', permits, ARGV[1]) end
local delta, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
if delta ~= 0 and tpm > 0 then
  local f = factor()
  local tat = tonumber(redis.call('HGET', state, 'ttat')) or now
  -- An overrun is charged whatever the bucket holds (the vendor already
  -- counted it); a refund cannot bank time before now.
  redis.call('HSET', state, 'ttat', math.max(tat + delta * 60000 / (tpm * f), now))
  redis.call('HINCRBY', state, 'tokens', delta)
end
touch()
return 1
`)

// throttleScript records a vendor's 429: one cut of the shared rate per
// cutEvery, and a pause for everyone until the vendor's Retry-After.
// ARGV: retry-after ms (0: none). Reply: factor ppm.
var throttleScript = redis.NewScript(luaCommon + `
local f = factor()
local cut = tonumber(redis.call('HGET', state, 'cut')) or 0
if now - cut >= ` + itoa(cutEvery.Milliseconds()) + ` then
  f = math.max(` + ftoa(minFactor) + `, f * ` + ftoa(cutFactor) + `)
  redis.call('HSET', state, 'cut', now)
end
redis.call('HSET', state, 'factor', tostring(f), 'fat', now)
local ra = tonumber(ARGV[1])
if ra > 0 then
  local blocked = tonumber(redis.call('HGET', state, 'until')) or 0
  redis.call('HSET', state, 'until', math.max(blocked, now + ra))
end
redis.call('HINCRBY', state, 'throttled', 1)
touch()
return math.floor(f * 1000000)
`)

// renewScript extends the leases of the permits a process still holds.
// XX: a permit released meanwhile, or lost with a Redis restart, is not
// brought back. ARGV: lease ms, permit ids.
var renewScript = redis.NewScript(luaCommon + `
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', permits, 'XX', now + lease, ARGV[i]) end
touch()
return 1
`)

// measureScript reads a budget for the operator: {now ms, factor ppm,
// granted, tokens, granted to party, permits in use, party's waiting,
// throttled}. ARGV: party.
var measureScript = redis.NewScript(luaCommon + `
local party = ARGV[1]
local h = redis.call('HMGET', state, 'granted', 'tokens', 'granted:' .. party, 'throttled')
local inuse = redis.call('ZCOUNT', permits, '(' .. now, '+inf')
local w = waitingByParty()[party] or 0
return {now, math.floor(factor() * 1000000), tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0, inuse, w, tonumber(h[4]) or 0}
`)

func itoa(n int64) string   { return strconv.FormatInt(n, 10) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
