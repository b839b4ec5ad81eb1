-- include: admit
-- include: refund
-- KEYS: processing, queue, attempts. ARGV: the head and tail of the in-flight keys.
-- Used after a claim's reply was lost in a Redis outage, once this process holds no job: every
-- job still in its processing list was claimed without its knowing. Each goes back to the head
-- of the queue with the attempt that claim counted refunded (and its in-flight marker given up).
local n = 0
while true do
  local raw = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not raw then break end
  n = n + 1
  release_marker(raw, KEYS[1], ARGV[1], ARGV[2])
  refund(KEYS[3], raw)
end
return n
