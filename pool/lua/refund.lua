-- Un-counts an attempt that was counted but did not run to its end (given back on shutdown or
-- on a pool-wide error): those must not bring a job closer to the failed list.
local function refund(attempts, raw)
  if redis.call('HINCRBY', attempts, raw, -1) <= 0 then redis.call('HDEL', attempts, raw) end
end
