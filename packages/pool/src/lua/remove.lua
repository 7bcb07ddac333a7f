--[[
  remove: deletes a session or a proxy. A removed proxy's sessions stay bound to its id and
  leave the ready set until the proxy is upserted again or they are rebound.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"   KEYS[3] B.."sessions"   KEYS[4] B.."proxies"
  KEYS[5] B.."lru"
  ARGV[1] B   ARGV[2] kind: session | proxy   ARGV[3] id

  Returns 1 when something was removed, 0 when it did not exist.
]]
local B = ARGV[1]
local id = ARGV[3]
if ARGV[2] == 'session' then
  local sk = B .. 's:' .. id
  local pid = redis.call('HGET', sk, 'proxy')
  if pid and pid ~= '' then
    redis.call('SREM', B .. 'p:' .. pid .. ':s', id)
  end
  redis.call('ZREM', KEYS[1], id)
  redis.call('SREM', KEYS[3], id)
  redis.call('HDEL', KEYS[5], id)
  return redis.call('DEL', sk)
end
local n = redis.call('DEL', B .. 'p:' .. id)
redis.call('SREM', KEYS[4], id)
redis.call('ZREM', KEYS[2], id)
local members = redis.call('SMEMBERS', B .. 'p:' .. id .. ':s')
for i = 1, #members do
  rescore_session(B, members[i], false)
end
return n
