-- include: refund
-- KEYS: processing, queue, attempts, heartbeat, pools. ARGV: pool id, raw jobs to refund...
-- Gives back everything this process still holds and unregisters it.
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do n = n + 1 end
for i = 2, #ARGV do refund(KEYS[3], ARGV[i]) end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[5], ARGV[1])
return n
