--[[
  Shared helpers, prepended to every pool script when it is loaded (scripts.ts). Not a script
  by itself.

  Key layout (B = ARGV[1] = "<prefix>:{<prefix>:pool}:", one hash tag for the whole pool):
    B.."sessions"        SET   every session id
    B.."ready"           ZSET  leasable sessions, score = µs (Redis time) when it may next send,
                               counting its own GCRA, its cooldown and its proxy's block
    B.."proxies"         SET   every proxy id
    B.."proxy-ready"     ZSET  proxies not disabled, score = µs when the proxy may next send
    B.."s:"..id          HASH  one session (fields below)
    B.."p:"..id          HASH  one proxy (fields below)
    B.."p:"..id..":s"    SET   ids of the sessions bound to proxy id
    B.."global"          STRING TAT of the optional global budget, µs
    B.."seq"             STRING lease counter
    B.."lru"             HASH  session id → last lease µs (the pick window's LRU in one HMGET)

  Session hash: label, proxy ("" = none), st (active|invalid|challenge|suspended|disabled),
    iv0 (configured emission interval µs), iv (effective interval µs, > iv0 when adaptive mode
    lowered the rate), b (burst), rf (rate factor ‰, 1000 = configured), tat (GCRA theoretical
    arrival time µs), cu (cooldown until µs), lu (last lease µs), n (leases), bk (consecutive
    throttles = backoff exponent), ok (successes since the last rate change), rt (adaptive: the
    rate factor ‰ that was last throttled, 0 = none), tr (adaptive: µs of the last throttle report),
    ps (adaptive: admission µs of the request that opened the latest throttle streak), pw
    (adaptive: the upstream's penalty as learned, µs), err, ea (last error code and µs).
  Proxy hash: label, st (active|broken|disabled), iv, b, tat, cu, ra (broken: no lease before
    this µs), lu, n, bk (consecutive throttles), cb (consecutive breaks), err, ea.

  GCRA: with interval T and tolerance tau = (b - 1)·T, a request at `now` is admitted when
  max(tat, now) - now <= tau, i.e. when now >= tat - tau; admitting sets tat = max(tat, now) + T.
  All times are integer microseconds of Redis TIME; no client clock is ever used.
]]

local function num(v)
  return tonumber(v) or 0
end

-- Integers as exact decimal strings (tostring would give 1.7e+15 and lose digits).
local function fmt(x)
  return string.format('%d', x)
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- When the proxy may next send (µs), or nil when it cannot carry traffic (missing, disabled).
-- The empty id (a session without proxy) never blocks.
local function proxy_block(B, pid)
  if pid == nil or pid == '' then
    return 0
  end
  local h = redis.call('HMGET', B .. 'p:' .. pid, 'st', 'tat', 'iv', 'b', 'cu', 'ra')
  local st = h[1]
  if not st or st == 'disabled' then
    return nil
  end
  local block = math.max(num(h[2]) - (num(h[4]) - 1) * num(h[3]), num(h[5]))
  if st == 'broken' then
    block = math.max(block, num(h[6]))
  end
  return block
end

-- When the session itself may next send (µs): its GCRA and its cooldown, not its proxy.
local function session_own(tat, iv, b, cu)
  return math.max(num(tat) - (num(b) - 1) * num(iv), num(cu))
end

-- Puts one session in or out of the ready set with its exact score. pb: its proxy's block if
-- the caller already knows it (false = look it up).
local function rescore_session(B, sid, pb)
  local h = redis.call('HMGET', B .. 's:' .. sid, 'st', 'proxy', 'tat', 'iv', 'b', 'cu')
  if h[1] ~= 'active' then
    redis.call('ZREM', B .. 'ready', sid)
    return
  end
  if pb == false then
    pb = proxy_block(B, h[2])
  end
  if pb == nil then
    redis.call('ZREM', B .. 'ready', sid)
    return
  end
  redis.call('ZADD', B .. 'ready', fmt(math.max(session_own(h[3], h[4], h[5], h[6]), pb)), sid)
end

-- Rescores a proxy in proxy-ready and every session bound to it.
local function rescore_proxy(B, pid)
  local pb = proxy_block(B, pid)
  if pb == nil then
    redis.call('ZREM', B .. 'proxy-ready', pid)
  else
    redis.call('ZADD', B .. 'proxy-ready', fmt(pb), pid)
  end
  local members = redis.call('SMEMBERS', B .. 'p:' .. pid .. ':s')
  for i = 1, #members do
    rescore_session(B, members[i], pb)
  end
end

-- Rescores what a change to session sid affects: the session (with its proxy's block).
local function rescore_owner(B, sid)
  rescore_session(B, sid, false)
end

-- Full-jitter delay: r · min(cap, base · 2^k), r in [0, 1).
local function full_jitter(r, base, cap, k)
  return math.floor(r * math.min(cap, base * 2 ^ math.min(k, 40)))
end
