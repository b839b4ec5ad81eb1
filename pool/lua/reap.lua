-- include: admit
-- include: refund
-- KEYS: heartbeat, processing, queue, pools, attempts, deaths (of a process presumed dead).
-- ARGV: its pool id, MAX_RETRIES + 1, the head and tail of the in-flight keys, how long the
-- deaths hash is kept after the last death (ms: nothing else clears it when a job ends).
-- Returns -1 if it is alive after all, else how many jobs went back to the queue.
-- The attempt each job had open died with the process: it is refunded, so attempts spent on
-- answers (429s, 5xx) and deaths do not add up; the deaths are counted apart, and a job that
-- killed its process MAX_RETRIES + 1 times has used its attempts (it "keeps killing" it).
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local limit = tonumber(ARGV[2])
local n = 0
while true do
  local raw = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
  if not raw then break end
  n = n + 1
  if redis.call('HINCRBY', KEYS[6], raw, 1) >= limit then
    redis.call('HSET', KEYS[5], raw, limit)
  else
    refund(KEYS[5], raw)
  end
  release_marker(raw, KEYS[2], ARGV[3], ARGV[4])
end
if n > 0 then redis.call('PEXPIRE', KEYS[6], ARGV[5]) end
redis.call('SREM', KEYS[4], ARGV[1])
return n
