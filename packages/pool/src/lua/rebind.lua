--[[
  rebind: moves a session to another proxy. A session keeps one stable egress, so this is
  refused while its current proxy can still carry traffic (exists and is active, cooling
  included) unless forced; it is meant for a dead proxy (broken, disabled or removed).

  KEYS[1] B.."ready"
  ARGV[1] B   ARGV[2] session id   ARGV[3] new proxy id ("" = none)   ARGV[4] 1 = force

  Returns {1, oldProxyId} or {0, reason}: no_such_session | no_such_proxy | proxy_disabled |
  proxy_alive.
]]
local B = ARGV[1]
local sid = ARGV[2]
local npid = ARGV[3]
local force = ARGV[4] == '1'
local sk = B .. 's:' .. sid
if redis.call('EXISTS', sk) == 0 then
  return {0, 'no_such_session'}
end
if npid ~= '' then
  local nst = redis.call('HGET', B .. 'p:' .. npid, 'st')
  if not nst then
    return {0, 'no_such_proxy'}
  end
  if nst == 'disabled' then
    return {0, 'proxy_disabled'}
  end
end
local old = redis.call('HGET', sk, 'proxy') or ''
if not force and old ~= '' then
  local ost = redis.call('HGET', B .. 'p:' .. old, 'st')
  if ost == 'active' then
    return {0, 'proxy_alive'}
  end
end
if old ~= '' then
  redis.call('SREM', B .. 'p:' .. old .. ':s', sid)
end
if npid ~= '' then
  redis.call('SADD', B .. 'p:' .. npid .. ':s', sid)
end
redis.call('HSET', sk, 'proxy', npid)
rescore_owner(B, sid)
return {1, old}
