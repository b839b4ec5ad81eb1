-- Correct a reservation from the answer: its usage and its x-ratelimit-* headers.
-- KEYS[1] state hash  KEYS[2] use ring  KEYS[3] scout
-- ARGV[1] token correction (integer: > 0 charges, < 0 refunds)
-- ARGV[2] limit-requests  ARGV[3] limit-tokens  ARGV[4] remaining-requests
-- ARGV[5] remaining-tokens ('' where the answer did not say)
-- ARGV[6] configured rpm  ARGV[7] configured tpm  ARGV[8] burst, ms
-- ARGV[9] scout token ('' = not a scout)  ARGV[10] how long to stop learning, ms, when a
--         scout's answer did not tell the limits (a server without x-ratelimit-* headers)
local state = KEYS[1]
local now = now_ms()
learn(state, ARGV[2], ARGV[3])
local s = redis.call('HMGET', state, 'learned_rpm', 'learned_tpm', 'tat_r', 'tat_t')
local rpm = limit_of(ARGV[6], s[1])
local tpm = limit_of(ARGV[7], s[2])
local burst = tonumber(ARGV[8])
local tat_r, tat_t = num(s[3], 0), num(s[4], 0)
local delta = tonumber(ARGV[1])
if tpm > 0 and delta > 0 then
  tat_t = charge(tat_t, delta, WINDOW_MS / tpm, now)
elseif tpm > 0 and delta < 0 then
  tat_t = refund(tat_t, -delta, WINDOW_MS / tpm, now)
end
if delta ~= 0 then note_use(KEYS[2], now, 0, delta, 0) end
if rpm > 0 and ARGV[4] ~= '' then
  tat_r = cap_to_remaining(tat_r, tonumber(ARGV[4]), WINDOW_MS / rpm, burst, now)
end
if tpm > 0 and ARGV[5] ~= '' then
  tat_t = cap_to_remaining(tat_t, tonumber(ARGV[5]), WINDOW_MS / tpm, burst, now)
end
if rpm > 0 or tpm > 0 then
  redis.call('HSET', state, 'tat_r', f(tat_r), 'tat_t', f(tat_t))
end
if free_scout(KEYS[3], ARGV[9]) and (rpm == 0 or tpm == 0) then
  redis.call('HSET', state, 'nohdr_until', f(now + tonumber(ARGV[10])))
end
return f(now)
