-- include: refresh_state
-- KEYS: processing, queue, pages, status, errors, attempts, crashes, epoch.
-- ARGV: raw job, page index, page json, total, now, epoch. Returns 1 if the page is new.
if redis.call('GET', KEYS[8]) ~= ARGV[6] then return -1 end
local bad = not_hashes(KEYS[3], KEYS[4], KEYS[5])
if bad then return bad end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  -- We were taken for dead and the job went back to the queue: don't generate it twice.
  redis.call('LREM', KEYS[2], -1, ARGV[1])
end
local new = redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('HDEL', KEYS[7], ARGV[1])
ensure_status(KEYS[4], ARGV[4], ARGV[5])
redis.call('HSETNX', KEYS[4], 'startedAt', ARGV[5])
if new == 1 then redis.call('HINCRBY', KEYS[4], 'done', 1) end
if redis.call('HDEL', KEYS[5], ARGV[2]) == 1 then redis.call('HINCRBY', KEYS[4], 'failed', -1) end
refresh_state(KEYS[4], ARGV[5])
return new
