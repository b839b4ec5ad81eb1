-- include: admit
-- include: refund
-- KEYS: processing, queue, attempts.
-- ARGV: raw job, '1' to refund its attempt, the head and tail of the in-flight keys.
local moved = redis.call('LREM', KEYS[1], 1, ARGV[1])
if moved > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  release_marker(ARGV[1], KEYS[1], ARGV[3], ARGV[4])
end
if ARGV[2] == '1' then refund(KEYS[3], ARGV[1]) end
return moved
