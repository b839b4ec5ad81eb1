-- An ebook's ledger in its status hash (docs/contract.md, pool/ledger.py): adds what one job
-- cost, `packed` = eight space-separated numbers in this order; zeros are not written.
local LEDGER = {'requests', 'promptTokens', 'completionTokens', 'wastedTokens', 'costUsd',
  'cacheHits', 'cacheMisses', 'tokensSaved'}
local PACKED = '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$'
local function add_ledger(st, packed)
  if packed == '0 0 0 0 0 0 0 0' then return end
  local values = {string.match(packed, PACKED)}  -- one match, not an iterator per number
  for k = 1, #values do
    local v = values[k]
    if v ~= '0' then
      if k == 5 then redis.call('HINCRBYFLOAT', st, LEDGER[k], v)
      else redis.call('HINCRBY', st, LEDGER[k], v) end
    end
  end
end
