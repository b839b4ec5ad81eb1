-- Idempotent jobs (docs/contract.md, "Idempotency"): a job's ids and brief as Lua reads them
-- from its payload, the check made when a job is claimed, and the in-flight marker.
-- The fields that change the text; metadata, the ids and `regenerate` are not part of the
-- brief.
local BRIEF = {'title', 'topic', 'pageTitle', 'outline', 'outlineStart', 'instructions',
  'language', 'style', 'audience', 'targetWords', 'model', 'maxTokens', 'temperature'}

local function trim(s)
  if string.find(s, '^%s') or string.find(s, '%s$') then
    return (string.gsub(s, '^%s*(.-)%s*$', '%1'))
  end
  return s  -- the usual case, without the slower pattern
end
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

-- SHA-1 (all Redis Lua has) of the brief: one cjson.encode of the array name, value, name,
-- value... of the fields given, in BRIEF's order (a field left out or null is not in it).
local function brief_sha(j)
  local parts, n = {}, 0
  for _, name in ipairs(BRIEF) do
    local v = j[name]
    if v ~= nil and v ~= cjson.null then
      parts[n + 1], parts[n + 2], n = name, v, n + 2
    end
  end
  return redis.sha1hex(cjson.encode(parts))
end

local function count_skipped(status)
  redis.pcall('HINCRBY', status, 'skipped', 1)
end

-- The ticket of a job (what `complete` and `fail` get back): its brief's SHA-1, '+' if this
-- claim took the job's in-flight marker (else ' '), and the marker's key. '' for a payload
-- without readable ids.
local function make_ticket(sha, took, marker)
  return sha .. (took and '+' or ' ') .. marker
end

-- Whether the page record `stored` (JSON, or false) was written for jobId `id` with brief `sha`.
local function stored_as(stored, id, sha)
  if type(stored) ~= 'string' then return false end
  local ok, rec = pcall(cjson.decode, stored)
  return ok and type(rec) == 'table' and rec.jobId == id and rec.briefSha1 == sha
end

-- What to do with a job just claimed into the processing list `owner` (a process's list names
-- it in the in-flight marker, so the scripts that end the job find their own marker by it).
-- Returns its ticket (see make_ticket) to generate it; or false and why it is acknowledged
-- without a request: its page is stored for the same jobId and brief ('stored', read from the
-- page record itself), or the same payload is held by a pool process ('in flight').
-- `p` holds the heads and tails of the pages, status and in-flight keys (Keys.parts).
-- App-writable keys are read with pcall: a key of another type must not stop a claim half-way.
local function admit(raw, owner, ttl, p)
  local e, page, id, j = job_ids(raw)
  if not e then return '' end
  local ok, sha = pcall(brief_sha, j)
  if not ok then return '' end
  if j.regenerate ~= true and stored_as(redis.pcall('HGET', p[1] .. e .. p[2], page), id, sha) then
    count_skipped(p[3] .. e .. p[4])
    return false, 'stored'
  end
  -- The marker names the brief, the exact payload and the owner: only a byte-identical copy
  -- (the app pushing the same job twice) is acknowledged as in flight, so a different payload
  -- under the same ids (one the pool will find invalid, say) still reaches its own end.
  local marker = p[5] .. id .. p[6]
  local this = sha .. ' ' .. redis.sha1hex(raw) .. ' '
  local set = redis.pcall('SET', marker, this .. owner, 'NX', 'PX', ttl)
  if type(set) == 'table' and set.ok then return make_ticket(sha, true, marker) end
  local held = redis.pcall('GET', marker)
  if type(held) == 'string' and string.sub(held, 1, #this) == this then
    count_skipped(p[3] .. e .. p[4])
    return false, 'in flight'
  end
  -- Another brief under the same jobId is in flight: both are written.
  return make_ticket(sha, false, marker)
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

-- The job ended: deletes its in-flight marker if this claim took it and still holds it (same
-- brief, same owner: it may have expired and been taken by a later copy).
local function end_ticket(ticket, owner)
  if string.sub(ticket, 41, 41) ~= '+' then return end
  local marker = string.sub(ticket, 42)
  local v = redis.pcall('GET', marker)
  if type(v) == 'string' and string.sub(v, 1, 41) == string.sub(ticket, 1, 40) .. ' '
    and string.sub(v, -(#owner + 1)) == ' ' .. owner then
    redis.call('DEL', marker)
  end
end
