--[[
  set-proxy-state: markProxy. active closes a broken circuit (a running cooldown stays);
  disabled takes the proxy and, with it, every session bound to it out of rotation.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"
  ARGV[1] B   ARGV[2] proxy id   ARGV[3] state: active | disabled

  Returns {1, previousState} or {0, ""} when the proxy does not exist.
]]
local B = ARGV[1]
local pid = ARGV[2]
local pk = B .. 'p:' .. pid
local prev = redis.call('HGET', pk, 'st')
if not prev then
  return {0, ''}
end
redis.call('HSET', pk, 'st', ARGV[3])
if ARGV[3] == 'active' then
  redis.call('HSET', pk, 'ra', 0, 'cb', 0)
end
rescore_proxy(B, pid)
return {1, prev}
