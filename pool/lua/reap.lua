-- KEYS: heartbeat, processing, queue, pools (of a process presumed dead). ARGV: its pool id.
-- Returns -1 if it is alive after all, else how many jobs went back to the queue.
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do n = n + 1 end
redis.call('SREM', KEYS[4], ARGV[1])
return n
