--[[
  upsert-proxy: creates or updates a proxy (label, budget). Re-importing resets its state to
  active and closes its circuit, unless ARGV[6] asks to keep an existing member's state. tat and
  a running cooldown are kept. The proxy's URL and password never come here (Postgres only).

  KEYS[1] B.."proxy-ready"   KEYS[2] B.."proxies"
  ARGV[1] B   ARGV[2] id   ARGV[3] label   ARGV[4] emission interval µs   ARGV[5] burst
  ARGV[6] 1 = keep existing state

  Returns 1 when created, 0 when updated.
]]
local B = ARGV[1]
local pid = ARGV[2]
local pk = B .. 'p:' .. pid
local created = redis.call('EXISTS', pk) == 0
if created then
  redis.call('HSET', pk, 'st', 'active', 'tat', 0, 'cu', 0, 'ra', 0, 'lu', 0, 'n', 0, 'bk', 0,
    'cb', 0)
elseif ARGV[6] ~= '1' then
  redis.call('HSET', pk, 'st', 'active', 'ra', 0, 'bk', 0, 'cb', 0)
end
redis.call('HSET', pk, 'label', ARGV[3], 'iv', ARGV[4], 'b', ARGV[5])
redis.call('SADD', KEYS[2], pid)
rescore_proxy(B, pid)
if created then
  return 1
end
return 0
