-- include: admit
-- KEYS: queue, processing, attempts, epoch.
-- ARGV: max count, epoch, pool id, in-flight marker TTL ms, then the heads and tails of the
-- briefs, status and in-flight keys (six strings, see admit).
-- Moves up to ARGV[1] jobs, oldest first, and counts an attempt of each, except the jobs
-- acknowledged without a request (see admit): those leave the queue and are not counted.
-- Returns, per job: the job, its attempt number (0 = acknowledged), its brief sha (or why it was
-- acknowledged) and the jobId whose in-flight marker it took; {-1} if the epoch changed.
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return {-1} end
local items = redis.call('RPOP', KEYS[1], ARGV[1])
if not items then return {} end
local parts = {ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]}
local out = {}
for i, raw in ipairs(items) do
  local sha, ticket = admit(raw, ARGV[3], ARGV[4], parts)
  out[4 * i - 3] = raw
  if sha then
    redis.call('LPUSH', KEYS[2], raw)
    out[4 * i - 2] = redis.call('HINCRBY', KEYS[3], raw, 1)
    out[4 * i - 1] = sha
  else
    out[4 * i - 2] = 0
    out[4 * i - 1] = ticket
    ticket = ''
  end
  out[4 * i] = ticket
end
return out
