-- KEYS: queue, processing, attempts, epoch. ARGV: max count, epoch.
-- Moves up to ARGV[1] jobs, oldest first, and counts an attempt of each.
-- Returns job 1, its attempt number, job 2, its attempt number, ... or {-1} if the epoch changed.
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return {-1} end
local items = redis.call('RPOP', KEYS[1], ARGV[1])
if not items then return {} end
local out = {}
for i, raw in ipairs(items) do
  redis.call('LPUSH', KEYS[2], raw)
  out[2 * i - 1] = raw
  out[2 * i] = redis.call('HINCRBY', KEYS[3], raw, 1)
end
return out
