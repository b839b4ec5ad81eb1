-- Idempotent jobs (docs/contract.md, "Idempotency"): a job's ids and brief as Lua reads them
-- from its payload, the check made when a job is claimed, and the in-flight marker.
-- The fields that change the text; metadata, the ids and `regenerate` are not part of the brief.
local BRIEF = {'title', 'topic', 'pageTitle', 'outline', 'instructions', 'language', 'style',
  'audience', 'targetWords', 'model', 'maxTokens', 'temperature'}

local function trim(s) return (string.gsub(s, '^%s*(.-)%s*$', '%1')) end
-- The contract's id pattern (pool.job.ID_PATTERN): ids become part of key names.
local function valid_id(s) return #s <= 200 and string.find(s, '^[%w_.:@+=/%-]+$') ~= nil end

-- ebookId, page index (as text), jobId and the decoded job; nil if the payload has no such ids
-- (an invalid job: the pool fails it in Python).
local function job_ids(raw)
  local ok, j = pcall(cjson.decode, raw)
  if not ok or type(j) ~= 'table' then return nil end
  local e, p, id = j.ebookId, j.pageIndex, j.jobId
  if type(e) ~= 'string' or type(p) ~= 'number' or p ~= math.floor(p) or p < 0 or p > 1e9 then
    return nil
  end
  e = trim(e)
  local page = string.format('%d', p)
  if id == nil or id == cjson.null then
    id = e .. ':' .. page
  elseif type(id) == 'string' then
    id = trim(id)
  else
    return nil
  end
  if not (valid_id(e) and valid_id(id)) then return nil end
  return e, page, id, j
end

-- SHA-1 (all Redis Lua has) of the brief's fields, in a fixed order, each as cjson writes it.
local function brief_sha(j)
  local parts = {}
  for i, name in ipairs(BRIEF) do
    local v = j[name]
    if v == nil or v == cjson.null then parts[i] = '' else parts[i] = cjson.encode(v) end
  end
  return redis.sha1hex(table.concat(parts, '\n'))
end

local function count_skipped(status)
  redis.pcall('HINCRBY', status, 'skipped', 1)
end

-- What to do with a job just claimed into the processing list `owner` (a process's list names
-- it in the in-flight marker, so the scripts that end the job find their own marker by it). Returns its ticket, "briefSha1 jobId" ('' for a
-- payload without readable ids), to generate it; or false and why it is acknowledged without
-- a request: its page is stored for the same jobId and brief ('stored'), or a copy with the
-- same brief is held by a pool process ('in flight'). `p` holds the heads and tails of
-- the briefs, status and in-flight keys (Keys.parts). App-writable keys are read with pcall: a
-- key of another type must not stop a claim half-way.
local function admit(raw, owner, ttl, p)
  local e, page, id, j = job_ids(raw)
  if not e then return '' end
  local ok, sha = pcall(brief_sha, j)
  if not ok then return '' end
  local ticket = sha .. ' ' .. id
  if j.regenerate ~= true then
    local stored = redis.pcall('HGET', p[1] .. e .. p[2], page)
    if stored == ticket then
      count_skipped(p[3] .. e .. p[4])
      return false, 'stored'
    end
  end
  local marker = p[5] .. id .. p[6]
  local set = redis.pcall('SET', marker, sha .. ' ' .. owner, 'NX', 'PX', ttl)
  if type(set) == 'table' and set.ok then return ticket end
  local held = redis.pcall('GET', marker)
  if type(held) == 'string' and string.sub(held, 1, #sha + 1) == sha .. ' ' then
    count_skipped(p[3] .. e .. p[4])
    return false, 'in flight'
  end
  return ticket  -- another brief under the same jobId is in flight: both are written
end

-- Deletes the in-flight marker of `raw`'s job if the processing list `owner` holds it: a job
-- given back or reaped must not find its own marker when it is claimed again.
local function release_marker(raw, owner, head, tail)
  local _, _, id = job_ids(raw)
  if not id then return end
  local key = head .. id .. tail
  local v = redis.pcall('GET', key)
  if type(v) == 'string' and string.sub(v, -(#owner + 1)) == ' ' .. owner then
    redis.call('DEL', key)
  end
end

-- The job ended: records its brief with its page (if `briefs`), and deletes its in-flight
-- marker if it is this claim's (same brief, same owner: a marker this claim did not take holds
-- another brief, or the copy would have been acknowledged instead of run).
local function end_ticket(ticket, owner, marker, briefs, page)
  if ticket == '' then return end
  if briefs then redis.call('HSET', briefs, page, ticket) end
  if redis.pcall('GET', marker) == string.sub(ticket, 1, 40) .. ' ' .. owner then
    redis.call('DEL', marker)
  end
end
