-- include: refresh_state
-- include: ledger
-- include: admit
-- KEYS: processing, queue, pages, status, errors, attempts, crashes, epoch.
-- ARGV: raw job, page index, page json, total, now, epoch, ticket (see admit), RESULT_TTL ms,
-- ledger (see ledger.lua). Returns 1 if the page is new.
-- The job's deaths (reap.lua) are not cleared here: that hash expires by itself.
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
end_ticket(ARGV[7], KEYS[1])
-- ensure_status and startedAt in one read (usually all set) instead of three HSETNX.
local have = redis.call('HMGET', KEYS[4], 'total', 'createdAt', 'startedAt')
if not (have[1] and have[2] and have[3]) then
  ensure_status(KEYS[4], ARGV[4], ARGV[5])
  redis.call('HSETNX', KEYS[4], 'startedAt', ARGV[5])
end
if new == 1 then redis.call('HINCRBY', KEYS[4], 'done', 1) end
if redis.call('HDEL', KEYS[5], ARGV[2]) == 1 then redis.call('HINCRBY', KEYS[4], 'failed', -1) end
add_ledger(KEYS[4], ARGV[9])
refresh_state(KEYS[4], ARGV[5], ARGV[8], {KEYS[4], KEYS[3], KEYS[5]})
return new
