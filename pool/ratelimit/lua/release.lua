-- End a permit without an answer to learn from.
-- KEYS[1] state hash  KEYS[2] use ring  KEYS[3] scout
-- ARGV[1] '1' = the request was never sent: give its reservation back; '0' = it was sent
--         (an error answer, a timeout): the API may have counted it, keep it
-- ARGV[2] tokens reserved  ARGV[3] configured rpm  ARGV[4] configured tpm
-- ARGV[5] scout token ('' = not a scout)
local state = KEYS[1]
local now = now_ms()
if ARGV[1] == '1' then
  local s = redis.call('HMGET', state, 'learned_rpm', 'learned_tpm', 'tat_r', 'tat_t')
  local rpm = limit_of(ARGV[3], s[1])
  local tpm = limit_of(ARGV[4], s[2])
  local tokens = tonumber(ARGV[2])
  if rpm > 0 then
    redis.call('HSET', state, 'tat_r', f(refund(num(s[3], 0), 1, WINDOW_MS / rpm, now)))
  end
  if tpm > 0 then
    redis.call('HSET', state, 'tat_t', f(refund(num(s[4], 0), tokens, WINDOW_MS / tpm, now)))
  end
  redis.call('HINCRBY', state, 'grants', -1)
  note_use(KEYS[2], now, -1, -tokens, 0)
end
free_scout(KEYS[3], ARGV[5])
return f(now)
