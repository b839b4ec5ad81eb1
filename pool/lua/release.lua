-- include: admit
-- include: refund
-- KEYS: processing, queue, attempts, heartbeat, pools.
-- ARGV: pool id, the head and tail of the in-flight keys, raw jobs to refund...
-- Gives back everything this process still holds (and its in-flight markers) and unregisters it.
local n = 0
while true do
  local raw = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not raw then break end
  n = n + 1
  release_marker(raw, KEYS[1], ARGV[2], ARGV[3])
end
for i = 4, #ARGV do refund(KEYS[3], ARGV[i]) end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[5], ARGV[1])
return n
