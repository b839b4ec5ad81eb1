-- include: refresh_state
-- KEYS: epoch, processing, failed, attempts, crashes [, status, errors, pages].
-- ARGV: raw job, failed entry, page index, reason, total, now, epoch.
if redis.call('GET', KEYS[1]) ~= ARGV[7] then return -1 end
if #KEYS == 8 then
  local bad = not_hashes(KEYS[6], KEYS[7], KEYS[8])
  if bad then return bad end
end
redis.call('LREM', KEYS[2], 1, ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if #KEYS == 8 then
  ensure_status(KEYS[6], ARGV[5], ARGV[6])
  if redis.call('HEXISTS', KEYS[8], ARGV[3]) == 0 then
    if redis.call('HSET', KEYS[7], ARGV[3], ARGV[4]) == 1 then
      redis.call('HINCRBY', KEYS[6], 'failed', 1)
    end
  end
  refresh_state(KEYS[6], ARGV[6])
end
return 1
