-- KEYS: per ebook of the batch, its status and its events stream (2 keys per ebook).
-- ARGV: channel, maxlen, ttl ms, now ms, pool id (JSON string), then the events in one string:
-- records separated by \30, each of 11 fields separated by \31: the ebook's number in KEYS
-- (1-based pair), ebook id, kind ("s" page stored, "f" page failed, "k" copy skipped: acknowledged
-- without a request, "b" the ebook's first page began), page index, total pages, job id, attempts, prompt tokens, completion tokens (""
-- = null), reason, error type ("" = null). One string, not one argument per field: packing
-- thousands of arguments costs the pool more than the script costs Redis.
-- Appends each page event to its ebook's stream (MAXLEN ~) and publishes it on the channel with
-- its stream id; then the ebook's state as an event, read here atomically with the appends, so
-- the stream's states follow the order of the changes even when several processes publish:
-- a state not yet recorded is appended right after the event that revealed it; a finished
-- ebook's state (done, failed, partial) is appended after the batch's last page event of that
-- ebook, so the last event of a finished ebook is always its final state. "b" only announces
-- "generating". Each entry is {data = event JSON, state = the ebook's state}. Returns the
-- number of entries appended.
local channel, maxlen, ttl, now, pool = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local FINISHED = {done = true, failed = true, partial = true}
local n = 0
local function append(stream, data, state)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'data', data, 'state', state)
  redis.call('PUBLISH', channel, string.sub(data, 1, -2) .. ',"id":"' .. id .. '"}')
  n = n + 1
end
local function num(value)
  if value == '' then return 'null' end
  return value
end
local function str(value)
  if value == '' then return 'null' end
  return cjson.encode(value)
end
local ebooks, order = {}, {}
local function ebook(i, id)
  local e = ebooks[id]
  if e then return e end
  local v = redis.call('HMGET', KEYS[2 * i - 1], 'state', 'total', 'done', 'failed')
  local state = v[1] or ''
  if not string.match(state, '^%a+$') then state = '' end
  local previous = ''
  local last = redis.call('XREVRANGE', KEYS[2 * i], '+', '-', 'COUNT', 1)[1]
  if last then previous = last[2][4] or '' end
  e = {id = id, stream = KEYS[2 * i], state = state, previous = previous, pending = false,
       counts = ',"total":' .. (tonumber(v[2]) or 0) .. ',"done":' .. (tonumber(v[3]) or 0) ..
         ',"failed":' .. (tonumber(v[4]) or 0)}
  ebooks[id] = e
  order[#order + 1] = e
  return e
end
local function announce(e)
  local previous = 'null'
  if e.previous ~= '' then previous = '"' .. e.previous .. '"' end
  append(e.stream, '{"v":1,"type":"state","ebookId":"' .. e.id .. '","state":"' .. e.state ..
    '","previous":' .. previous .. e.counts .. ',"at":' .. now .. '}', e.state)
  e.previous = e.state
  e.pending = false
  e.touched = true
end
for record in string.gmatch(ARGV[6], '[^\30]+') do
  local f = {}
  for field in string.gmatch(record .. '\31', '([^\31]*)\31') do f[#f + 1] = field end
  local e = ebook(tonumber(f[1]), f[2])
  local kind = f[3]
  if kind == 'b' then
    if e.state == 'generating' and e.previous ~= 'generating' then announce(e) end
  else
    local outcome = 'succeeded'
    if kind == 'f' then outcome = 'failed' elseif kind == 'k' then outcome = 'skipped' end
    append(e.stream, '{"v":1,"type":"page","ebookId":"' .. e.id .. '","pageIndex":' ..
      f[4] .. ',"totalPages":' .. f[5] .. ',"jobId":"' .. f[6] ..
      '","outcome":"' .. outcome .. '","attempts":' .. num(f[7]) ..
      ',"promptTokens":' .. num(f[8]) .. ',"completionTokens":' .. num(f[9]) ..
      ',"reason":' .. str(f[10]) .. ',"errorType":' .. str(f[11]) ..
      ',"at":' .. now .. ',"poolId":' .. pool .. '}', e.previous)
    e.touched = true
    if e.state ~= '' then
      if FINISHED[e.state] then e.pending = true
      elseif e.state ~= e.previous then announce(e) end
    end
  end
end
for _, e in ipairs(order) do
  if e.pending then announce(e) end
  if e.touched then redis.call('PEXPIRE', e.stream, ttl) end
end
return n
