-- Reserve one request and its tokens, or say how long to wait. Atomic, on Redis's clock.
-- KEYS[1] state hash  KEYS[2] use ring  KEYS[3] scout  KEYS[4] set of budget ids
-- ARGV[1] configured rpm (0 = none)  ARGV[2] configured tpm  ARGV[3] tokens of the request
-- ARGV[4] burst, ms  ARGV[5] longest acceptable delay, ms  ARGV[6] scout token
-- ARGV[7] scout ttl, ms  ARGV[8] budget id  ARGV[9] base url  ARGV[10] model
-- ARGV[11] key fingerprint  ARGV[12] ttl of the state, ms
-- Returns {kind, delay_ms, go_ms, rpm, tpm, now_ms}, kind one of:
--   go         reserved: send at go_ms (after delay_ms)
--   scout      reserved like go, but a limit is unknown: this request goes alone, to learn
--              the limits from its answer (the others get 'learning' until it ends)
--   learning   another request is scouting: ask again after delay_ms
--   cooldown   the API refused recently: ask again after delay_ms
--   too_large  the request needs more tokens than the tokens-per-minute limit
--   too_long   it could go only after delay_ms, more than the caller may wait (nothing reserved)
local state = KEYS[1]
local now = now_ms()
local s = redis.call('HMGET', state, 'learned_rpm', 'learned_tpm', 'nohdr_until', 'cd_until',
  'tat_r', 'tat_t', 'last_go')
local rpm, rpm_src = limit_of(ARGV[1], s[1])
local tpm, tpm_src = limit_of(ARGV[2], s[2])
local tokens = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])

if redis.call('HSETNX', state, 'model', ARGV[10]) == 1 then
  redis.call('HSET', state, 'base_url', ARGV[9], 'key', ARGV[11])
  redis.call('SADD', KEYS[4], ARGV[8])
end
redis.call('HSET', state, 'rpm', rpm, 'tpm', tpm, 'rpm_src', rpm_src, 'tpm_src', tpm_src,
  'burst_ms', burst)
redis.call('PEXPIRE', state, ARGV[12])

local cd_until = num(s[4], 0)
if now < cd_until then
  return {'cooldown', f(cd_until - now), '', rpm, tpm, f(now)}
end
if tpm > 0 and tokens > tpm then
  return {'too_large', '0', '', rpm, tpm, f(now)}
end
local go = math.max(now, num(s[7], 0))
local tat_r, tat_t = num(s[5], 0), num(s[6], 0)
local per_r, per_t = 0, 0
if rpm > 0 then
  per_r = WINDOW_MS / rpm
  go = math.max(go, earliest(tat_r, 1, per_r, burst))
end
if tpm > 0 then
  per_t = WINDOW_MS / tpm
  go = math.max(go, earliest(tat_t, tokens, per_t, burst))
end
local delay = go - now
if delay > tonumber(ARGV[5]) then
  return {'too_long', f(delay), '', rpm, tpm, f(now)}
end
-- A limit is unknown (and the API has not shown it sends none): one request at a time goes,
-- the scout, whose answer's x-ratelimit-limit-* headers teach the limits to every process.
local kind = 'go'
if (rpm == 0 or tpm == 0) and num(s[3], 0) <= now then
  if not redis.call('SET', KEYS[3], ARGV[6], 'NX', 'PX', ARGV[7]) then
    local left = redis.call('PTTL', KEYS[3])
    return {'learning', f(math.max(10, math.min(250, left))), '', rpm, tpm, f(now)}
  end
  kind = 'scout'
end
if rpm > 0 then tat_r = math.max(tat_r, go) + per_r end
if tpm > 0 then tat_t = math.max(tat_t, go) + tokens * per_t end
redis.call('HSET', state, 'tat_r', f(tat_r), 'tat_t', f(tat_t), 'last_go', f(go))
redis.call('HINCRBY', state, 'grants', 1)
note_use(KEYS[2], now, 1, tokens, 0)
return {kind, f(delay), f(go), rpm, tpm, f(now)}
