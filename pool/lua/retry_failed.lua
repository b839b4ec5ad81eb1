-- include: refresh_state
-- KEYS: failed, queue [, errors, status [, pages]]. ARGV: failed entry, raw job, page index,
-- now. The ebook's keys lose their RESULT_TTL while the page is pending again (a client that
-- passes errors and status only: those two keys).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
if #KEYS >= 4 then
  if redis.call('HDEL', KEYS[3], ARGV[3]) == 1 then redis.call('HINCRBY', KEYS[4], 'failed', -1) end
  refresh_state(KEYS[4], ARGV[4], '0', {KEYS[4], KEYS[3], KEYS[5]})
end
return 1
