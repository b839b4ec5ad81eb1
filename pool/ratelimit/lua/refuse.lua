-- The API refused a request for rate: start (or extend) the cool-down every process honours.
-- KEYS[1] state hash  KEYS[2] use ring  KEYS[3] scout
-- ARGV[1] cool-down, ms  ARGV[2..5] limit-requests, limit-tokens, remaining-requests,
-- remaining-tokens ('' where not said)  ARGV[6] configured rpm  ARGV[7] configured tpm
-- ARGV[8] burst, ms  ARGV[9] scout token ('' = not a scout)
-- Returns {cool-down left ms, cool-down start ms, now ms}.
--
-- Requests already reserved from the start of the cool-down on are shifted by its length
-- (their holders ask `check` before sending and add the shift), so the schedule moves with
-- them: tat and last_go move by the same amount, and the bucket is empty when it ends.
local state = KEYS[1]
local now = now_ms()
learn(state, ARGV[2], ARGV[3])
local s = redis.call('HMGET', state, 'learned_rpm', 'learned_tpm', 'tat_r', 'tat_t', 'last_go',
  'cd_until', 'cd_since')
local rpm = limit_of(ARGV[6], s[1])
local tpm = limit_of(ARGV[7], s[2])
local wait = tonumber(ARGV[1])
local burst = tonumber(ARGV[8])
local cd_until, cd_since = num(s[6], 0), num(s[7], 0)
local shift
if cd_until <= now then
  cd_since = now
  cd_until = now + wait
  shift = wait
else
  shift = math.max(0, now + wait - cd_until)
  cd_until = cd_until + shift
end
local tat_r, tat_t = num(s[3], 0), num(s[4], 0)
if rpm > 0 then tat_r = math.max(tat_r + shift, cd_until + burst) end
if tpm > 0 then tat_t = math.max(tat_t + shift, cd_until + burst) end
local last_go = math.max(num(s[5], 0) + shift, cd_until)
redis.call('HSET', state, 'tat_r', f(tat_r), 'tat_t', f(tat_t), 'last_go', f(last_go),
  'cd_until', f(cd_until), 'cd_since', f(cd_since))
redis.call('HINCRBY', state, 'refusals', 1)
note_use(KEYS[2], now, 0, 0, 1)
free_scout(KEYS[3], ARGV[9])
return {f(cd_until - now), f(cd_since), f(now)}
