-- The cool-down as it stands, for a holder of a reservation about to send.
-- KEYS[1] state hash. Returns {now ms, cool-down end ms, cool-down start ms}.
local s = redis.call('HMGET', KEYS[1], 'cd_until', 'cd_since')
return {f(now_ms()), f(num(s[1], 0)), f(num(s[2], 0))}
