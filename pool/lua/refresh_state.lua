-- Derives an ebook's state from its counters; shared by the scripts that change them.
-- Retention: when the ebook reaches a terminal state, `ekeys` (its keys) expire in `ttl` ms
-- (RESULT_TTL; '0' = keep); when it leaves one (a failed page retried), they are kept again.
local function refresh_state(st, now, ttl, ekeys)
  local v = redis.call('HMGET', st, 'total', 'done', 'failed', 'startedAt')
  local total = tonumber(v[1]) or 0
  local done = tonumber(v[2]) or 0
  local failed = tonumber(v[3]) or 0
  local state
  if total > 0 and done + failed >= total then
    if failed == 0 then state = 'done' elseif done == 0 then state = 'failed' else state = 'partial' end
    redis.call('HSETNX', st, 'finishedAt', now)
    if ttl ~= '0' then
      for _, k in ipairs(ekeys) do redis.call('PEXPIRE', k, ttl) end
    end
  else
    if redis.call('HDEL', st, 'finishedAt') == 1 then
      for _, k in ipairs(ekeys) do redis.call('PERSIST', k) end
    end
    if v[4] then state = 'generating' else state = 'queued' end
  end
  redis.call('HSET', st, 'state', state, 'updatedAt', now)
end
-- A script that fails half-way keeps its first writes (Lua has no rollback), so the scripts
-- check the ebook's keys (which the app writes too) before writing anything.
local function not_hashes(a, b, c)
  for _, k in ipairs({a, b, c}) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= 'hash' then
      return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t .. ', not a hash')
    end
  end
  return nil
end
local function ensure_status(st, total, now)
  redis.call('HSETNX', st, 'total', total)
  redis.call('HSETNX', st, 'createdAt', now)
end
