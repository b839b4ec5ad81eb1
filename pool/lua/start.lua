-- KEYS: attempts, epoch. ARGV: raw job, epoch. Counts one more attempt; returns its number.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
