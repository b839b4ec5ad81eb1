-- KEYS: status, ebook events stream. ARGV: channel, maxlen, ttl ms, now ms, ebook id,
-- page event JSON ('' when the ebook's first page started: announce "generating" only).
-- Appends the page event (if any), then the ebook's state as an event when it is not the state
-- the stream last recorded, or when the ebook is finished, so that the last event of a
-- finished ebook is always its final state (a page event published late repeats it). Each
-- entry is {data = event JSON, state = the ebook's state}, and each is published on the
-- channel with its stream id. The state is read here, atomically with the append, so the
-- stream's states follow the order of the changes even when several processes publish.
-- Returns how many events were appended.
local function append(data, state)
  local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'data', data, 'state', state)
  redis.call('PUBLISH', ARGV[1], string.sub(data, 1, -2) .. ',"id":"' .. id .. '"}')
end
local v = redis.call('HMGET', KEYS[1], 'state', 'total', 'done', 'failed')
local state = v[1] or ''
if not string.match(state, '^%a+$') then state = '' end
local previous = ''
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if last then previous = last[2][4] or '' end
local n = 0
if ARGV[6] ~= '' then
  append(ARGV[6], state)
  n = 1
end
local finished = state == 'done' or state == 'failed' or state == 'partial'
local wanted
if ARGV[6] == '' then
  wanted = state == 'generating' and previous ~= state
else
  wanted = state ~= '' and (state ~= previous or finished)
end
if wanted then
  local prev_json = 'null'
  if previous ~= '' then prev_json = '"' .. previous .. '"' end
  append('{"v":1,"type":"state","ebookId":"' .. ARGV[5] .. '","state":"' .. state ..
    '","previous":' .. prev_json .. ',"total":' .. (tonumber(v[2]) or 0) ..
    ',"done":' .. (tonumber(v[3]) or 0) .. ',"failed":' .. (tonumber(v[4]) or 0) ..
    ',"at":' .. ARGV[4] .. '}', state)
  n = n + 1
end
if n > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return n
