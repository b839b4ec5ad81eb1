-- include: admit
-- KEYS: queue, processing, attempts, epoch.
-- ARGV: max count, epoch, in-flight marker TTL ms, then the heads and tails of the pages,
-- status and in-flight keys (six strings, see admit).
-- Moves up to ARGV[1] jobs, oldest first, and counts an attempt of each, except the jobs
-- acknowledged without a request (see admit): those leave the queue and are not counted.
-- Returns, per job: the job, its attempt number and its ticket, or the job, 0 and why it was
-- acknowledged; {-1} if the epoch changed.
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return {-1} end
local items = redis.call('RPOP', KEYS[1], ARGV[1])
if not items then return {} end
local parts = {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]}
local out = {}
for i, raw in ipairs(items) do
  local ticket, why = admit(raw, KEYS[2], ARGV[3], parts)
  out[3 * i - 2] = raw
  if ticket then
    redis.call('LPUSH', KEYS[2], raw)
    out[3 * i - 1] = redis.call('HINCRBY', KEYS[3], raw, 1)
    out[3 * i] = ticket
  else
    out[3 * i - 1] = 0
    out[3 * i] = why
  end
end
return out
