-- Shared by the rate-limit scripts: prepended to each one when it is loaded (scripts.py).
--
-- A budget is two GCRA schedules, requests and tokens, on Redis's clock (TIME), in ms with
-- microsecond fractions. For each, `tat` (theoretical arrival time) is when the bucket would be
-- full again: a limit of L per minute spends one unit every 60000 / L ms, and the bucket holds
-- `burst` ms of the limit. A request of n units may go once
--     go >= tat + n * per_unit - burst   (or go >= tat when n units are more than the burst),
-- and moves tat to max(tat, go) + n * per_unit. So the grants of any interval of d ms hold at
-- most d / per_unit + burst / per_unit units (one request more when it is larger than the burst).

local WINDOW_MS = 60000

-- Redis < 5 replicates scripts verbatim and refuses writes after TIME; from 5 on this is the
-- default (and a no-op from 7 on).
if redis.replicate_commands then redis.replicate_commands() end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

local function num(value, default)
  local n = tonumber(value)
  if n == nil then return default end
  return n
end

-- A float as a string that keeps its microseconds (tostring keeps only 14 digits).
local function f(x)
  return string.format('%.3f', x)
end

-- The limit in force and where it comes from: the configured one (0 = none), else the learned
-- one, else 0 (unknown).
local function limit_of(configured, learned)
  local c = num(configured, 0)
  if c > 0 then return c, 'set' end
  local l = num(learned, 0)
  if l > 0 then return l, 'learned' end
  return 0, 'unknown'
end

-- Remember the limits an answer reported (x-ratelimit-limit-*; '' when it did not say).
local function learn(state, limit_r, limit_t)
  local r, t = num(limit_r, 0), num(limit_t, 0)
  if r > 0 then redis.call('HSET', state, 'learned_rpm', r) end
  if t > 0 then redis.call('HSET', state, 'learned_tpm', t) end
end

-- The earliest time `units` conform to a schedule whose tat is `tat`.
local function earliest(tat, units, per_unit, burst)
  local need = units * per_unit
  if need > burst then return tat end
  return tat + need - burst
end

local function charge(tat, units, per_unit, now)
  return math.max(tat, now) + units * per_unit
end

-- Give units back: the schedule moves back, but a full bucket stays full.
local function refund(tat, units, per_unit, now)
  if tat <= now then return tat end
  return math.max(now, tat - units * per_unit)
end

-- The API says `remaining` units are left: our bucket must not hold more than that.
local function cap_to_remaining(tat, remaining, per_unit, burst, now)
  return math.max(tat, now + burst - remaining * per_unit)
end

-- Count requests, tokens and refusals in the second `now` falls in: a ring of 60 slots.
local function note_use(key, now, requests, tokens, refusals)
  local sec = math.floor(now / 1000)
  local slot = sec % 60
  if num(redis.call('HGET', key, 's' .. slot), -1) ~= sec then
    redis.call('HSET', key, 's' .. slot, sec, 'r' .. slot, 0, 't' .. slot, 0, 'x' .. slot, 0)
  end
  if requests ~= 0 then redis.call('HINCRBY', key, 'r' .. slot, requests) end
  if tokens ~= 0 then redis.call('HINCRBY', key, 't' .. slot, tokens) end
  if refusals ~= 0 then redis.call('HINCRBY', key, 'x' .. slot, refusals) end
  redis.call('PEXPIRE', key, 120000)
end

-- Free the scout slot if `token` holds it; true if it did.
local function free_scout(key, token)
  if token ~= '' and redis.call('GET', key) == token then
    redis.call('DEL', key)
    return true
  end
  return false
end
