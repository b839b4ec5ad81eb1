-- An ebook's ledger in its status hash (docs/contract.md): adds what one job cost, from
-- ARGV[i] .. ARGV[i + 7] in this order; zeros are not written.
local LEDGER = {'requests', 'promptTokens', 'completionTokens', 'wastedTokens', 'costUsd',
  'cacheHits', 'cacheMisses', 'tokensSaved'}
local function add_ledger(st, i)
  for k, name in ipairs(LEDGER) do
    local v = ARGV[i + k - 1]
    if v ~= '0' then
      if name == 'costUsd' then redis.call('HINCRBYFLOAT', st, name, v)
      else redis.call('HINCRBY', st, name, v) end
    end
  end
end
