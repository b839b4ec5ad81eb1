-- include: refresh_state
-- KEYS: status, epoch. ARGV: total, now, epoch. The ebook's first page has started.
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
local bad = not_hashes(KEYS[1], KEYS[1], KEYS[1])
if bad then return bad end
ensure_status(KEYS[1], ARGV[1], ARGV[2])
if redis.call('HSETNX', KEYS[1], 'startedAt', ARGV[2]) == 1 then refresh_state(KEYS[1], ARGV[2], '0', {}) end
return 1
