-- include: refresh_state
-- include: ledger
-- include: admit
-- KEYS: epoch, processing, failed, attempts, crashes, deaths [, status, errors, pages].
-- ARGV: raw job, failed entry, page index, reason, total, now, epoch, ticket (see admit),
-- FAILED_LIST_MAX (0 = no limit), RESULT_TTL ms, ledger (see ledger.lua).
if redis.call('GET', KEYS[1]) ~= ARGV[7] then return -1 end
if #KEYS == 9 then
  local bad = not_hashes(KEYS[7], KEYS[8], KEYS[9])
  if bad then return bad end
end
redis.call('LREM', KEYS[2], 1, ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
if ARGV[9] ~= '0' then redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[9]) - 1) end
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
end_ticket(ARGV[8], KEYS[2])
if #KEYS == 9 then
  ensure_status(KEYS[7], ARGV[5], ARGV[6])
  if redis.call('HEXISTS', KEYS[9], ARGV[3]) == 0 then
    if redis.call('HSET', KEYS[8], ARGV[3], ARGV[4]) == 1 then
      redis.call('HINCRBY', KEYS[7], 'failed', 1)
    end
  end
  add_ledger(KEYS[7], ARGV[11])
  refresh_state(KEYS[7], ARGV[6], ARGV[10], {KEYS[7], KEYS[9], KEYS[8]})
end
return 1
