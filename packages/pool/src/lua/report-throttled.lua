--[[
  report-throttled: the upstream throttled the leased request (429, "Please wait a few
  minutes"). The session — and the proxy when the pattern points at the IP — cools down for
  max(Retry-After, full jitter r·min(cap, base·2^k)), k = consecutive throttles so far. A
  cooldown only moves later, and the member comes back with an empty burst (tat is set so that
  its first allowed request is at the cooldown's end and the next one a full interval later).
  Adaptive mode: a throttle that follows another throttle (k >= 1) multiplies the session's
  rate factor by the decrease factor.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"
  ARGV[1] B   ARGV[2] session id   ARGV[3] proxy id ("" = none)
  ARGV[4] r: a uniform random number in [0, 1) (the jitter; from the caller so tests pick it)
  ARGV[5] Retry-After µs (0 = none)   ARGV[6] 1 = the proxy cools down too
  ARGV[7] backoff base µs   ARGV[8] backoff cap µs   ARGV[9] error code
  ARGV[10] adaptive decrease factor ‰ (0 = adaptive mode off)   ARGV[11] adaptive floor ‰

  Returns {nowUs, sessionCooldownUntilUs (-1 = no such session), proxyCooldownUntilUs (-1 = not
  cooled)}.
]]
local B = ARGV[1]
local sid = ARGV[2]
local pid = ARGV[3]
local r = tonumber(ARGV[4])
local retry_after = tonumber(ARGV[5])
local ip = ARGV[6] == '1'
local base = tonumber(ARGV[7])
local cap = tonumber(ARGV[8])
local code = ARGV[9]
local decrease = tonumber(ARGV[10])
local floor_rf = tonumber(ARGV[11])
local now = now_us()

-- Cools one member down; returns the new cooldown end.
local function cool(key, k, iv, b, tat, cu)
  local until_us = math.max(num(cu), now + math.max(retry_after, full_jitter(r, base, cap, k)))
  local ntat = math.max(num(tat), until_us + (num(b) - 1) * iv)
  redis.call('HSET', key, 'cu', fmt(until_us), 'tat', fmt(ntat), 'bk', k + 1, 'err', code,
    'ea', fmt(now))
  return until_us
end

local s_until = -1
local sk = B .. 's:' .. sid
if redis.call('EXISTS', sk) == 1 then
  local h = redis.call('HMGET', sk, 'bk', 'iv', 'b', 'tat', 'cu', 'rf', 'iv0')
  local k = num(h[1])
  local iv = num(h[2])
  if decrease > 0 and k >= 1 then
    local rf = math.max(floor_rf, math.floor(num(h[6]) * decrease / 1000))
    iv = math.ceil(num(h[7]) * 1000 / rf)
    redis.call('HSET', sk, 'rf', rf, 'iv', fmt(iv), 'ok', 0)
  end
  s_until = cool(sk, k, iv, h[3], h[4], h[5])
  redis.call('HSET', sk, 'ok', 0)
end

local p_until = -1
if ip and pid ~= '' then
  local pk = B .. 'p:' .. pid
  if redis.call('EXISTS', pk) == 1 then
    local p = redis.call('HMGET', pk, 'bk', 'iv', 'b', 'tat', 'cu')
    p_until = cool(pk, num(p[1]), num(p[2]), p[3], p[4], p[5])
    rescore_proxy(B, pid)
  end
end
if s_until >= 0 then
  rescore_owner(B, sid)
end
return {now, s_until, p_until}
