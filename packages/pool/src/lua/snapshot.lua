--[[
  snapshot: every session and proxy with its hash and its ready score, read at one instant.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"   KEYS[3] B.."sessions"   KEYS[4] B.."proxies"
  ARGV[1] B

  Returns {nowUs, sessions, proxies}; each member is {id, readyScore ("" = not ready),
  field1, value1, field2, value2, ...}.
]]
local B = ARGV[1]
local now = now_us()
local function dump(set, zset, prefix)
  local out = {}
  local ids = redis.call('SMEMBERS', set)
  table.sort(ids)
  for i = 1, #ids do
    local row = {ids[i], redis.call('ZSCORE', zset, ids[i]) or ''}
    local h = redis.call('HGETALL', B .. prefix .. ids[i])
    for j = 1, #h do
      row[#row + 1] = h[j]
    end
    out[#out + 1] = row
  end
  return out
end
return {now, dump(KEYS[3], KEYS[1], 's:'), dump(KEYS[4], KEYS[2], 'p:')}
