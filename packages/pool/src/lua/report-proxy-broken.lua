--[[
  report-proxy-broken: the proxy failed (connect refused/reset/timeout, 407). Opens its circuit:
  state broken, no lease through it before now + d/2 + r·d/2 with d = min(cap, base·2^k),
  k = consecutive breaks (randomised recovery). The recovery time only moves later. After it,
  one lease probes the proxy (acquire holds it for the probe time); report-success closes the
  circuit, another break reopens it for longer. Its sessions stay bound to it (rebind is an
  explicit call). A disabled proxy stays disabled.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"
  ARGV[1] B   ARGV[2] proxy id   ARGV[3] r in [0, 1)   ARGV[4] base µs   ARGV[5] cap µs
  ARGV[6] error code

  Returns {nowUs, recoverAtUs} ({nowUs, -1} when the proxy does not exist).
]]
local B = ARGV[1]
local pid = ARGV[2]
local r = tonumber(ARGV[3])
local base = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local now = now_us()
local pk = B .. 'p:' .. pid
if redis.call('EXISTS', pk) == 0 then
  return {now, -1}
end
local h = redis.call('HMGET', pk, 'st', 'cb', 'ra')
local k = num(h[2])
local d = math.min(cap, base * 2 ^ math.min(k, 40))
local ra = math.max(num(h[3]), now + math.floor(d / 2 + r * d / 2))
redis.call('HSET', pk, 'ra', fmt(ra), 'cb', k + 1, 'err', ARGV[6], 'ea', fmt(now))
if h[1] ~= 'disabled' then
  redis.call('HSET', pk, 'st', 'broken')
end
rescore_proxy(B, pid)
return {now, ra}
