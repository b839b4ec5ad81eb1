-- include: admit
-- KEYS: processing, attempts, epoch. ARGV: raw job, epoch, then as claim.lua from the TTL.
-- For a job a blocking pop (BLMOVE) just moved into the processing list: claim.lua's check and
-- count for one job. Returns {attempt, ticket}, {0, why} if it was acknowledged (and taken
-- out of the processing list), or {-1} if the epoch changed.
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return {-1} end
local parts = {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]}
local ticket, why = admit(ARGV[1], KEYS[1], ARGV[3], parts)
if not ticket then
  redis.call('LREM', KEYS[1], 1, ARGV[1])
  return {0, why}
end
return {redis.call('HINCRBY', KEYS[2], ARGV[1], 1), ticket}
