--[[
  acquire: picks a session that may send now together with its bound proxy, checks the global
  budget, and commits all of them or none.

  KEYS[1] B.."ready"   KEYS[2] B.."global"   KEYS[3] B.."seq"   KEYS[4] B.."lru"
  (also reads and writes the session and proxy hashes, B.."proxy-ready" and B.."p:<id>:s",
  all under the same hash tag)
  ARGV[1] B (key base, "<prefix>:{<prefix>:pool}:")
  ARGV[2] window: how many ready sessions to consider (the least recently used one wins)
  ARGV[3] global emission interval µs (0 = no global budget)
  ARGV[4] global burst
  ARGV[5] probe hold µs: leasing through a broken proxy (its recovery time has passed) holds
          the proxy for this long, so one probe at a time tests it

  Returns
    {1, sessionId, sessionLabel, proxyId ("" = none), proxyLabel, leaseSeq, nowUs}  admitted
    {0, waitUs, "budget"}   nothing may send now; the earliest admission is waitUs from now
    {0, 0, "none"}          no leasable session at all (all invalid/disabled/without a proxy)
  A rejected call writes nothing.

  Cost: O(log n) on the ready set plus a constant number of calls (about 15 on admission,
  whatever the window: the window's last-used times come from one HMGET on B.."lru"); the
  proxy's other sessions are rescored with one ZADD XX GT, because an admission only ever moves
  the proxy's next-send time later.
]]
local B = ARGV[1]
local window = tonumber(ARGV[2])
local giv = tonumber(ARGV[3])
local gb = tonumber(ARGV[4])
local probe = tonumber(ARGV[5])
local now = now_us()

-- The earliest time anything may be admitted, for a rejection.
local function wait_reply(gallow)
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #head == 0 then
    return {0, 0, 'none'}
  end
  return {0, math.max(1, math.max(tonumber(head[2]), gallow) - now), 'budget'}
end

local gtat = 0
if giv > 0 then
  gtat = num(redis.call('GET', KEYS[2]))
  local gallow = gtat - (gb - 1) * giv
  if gallow > now then
    return wait_reply(gallow)
  end
end

local cands = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now), 'LIMIT', 0, window)
if #cands == 0 then
  return wait_reply(0)
end

-- Least recently used first (ties keep the ready order: the one that has waited longest).
-- Scores are exact, so the first pick may send; it is checked anyway (state, own GCRA,
-- cooldown, proxy) and a stale one is skipped rather than repaired on this path.
local lus = redis.call('HMGET', KEYS[4], unpack(cands))
for i = 1, #cands do
  lus[i] = num(lus[i])
end
local best, h, p
for _ = 1, #cands do
  local i = nil
  for j = 1, #cands do
    if lus[j] and (i == nil or lus[j] < lus[i]) then
      i = j
    end
  end
  lus[i] = false
  local sid = cands[i]
  local sh = redis.call('HMGET', B .. 's:' .. sid, 'st', 'proxy', 'tat', 'iv', 'b', 'cu', 'label', 'n')
  if sh[1] == 'active' and session_own(sh[3], sh[4], sh[5], sh[6]) <= now then
    local pid = sh[2] or ''
    if pid == '' then
      best, h, p = sid, sh, nil
      break
    end
    local ph = redis.call('HMGET', B .. 'p:' .. pid, 'st', 'tat', 'iv', 'b', 'cu', 'ra', 'label', 'n')
    if ph[1] and ph[1] ~= 'disabled' then
      local pb = math.max(num(ph[2]) - (num(ph[4]) - 1) * num(ph[3]), num(ph[5]))
      if ph[1] == 'broken' then
        pb = math.max(pb, num(ph[6]))
      end
      if pb <= now then
        best, h, p = sid, sh, ph
        break
      end
    end
  end
end
if best == nil then
  -- Only reachable if a score is stale: a short wait rather than a write on a rejection.
  return {0, 1000, 'budget'}
end

-- Commit: session, proxy, global, together.
local stat = math.max(num(h[3]), now) + num(h[4])
redis.call('HSET', B .. 's:' .. best, 'tat', fmt(stat), 'lu', fmt(now), 'n', num(h[8]) + 1)
redis.call('HSET', KEYS[4], best, fmt(now))
local pid = h[2] or ''
local pb = 0
if p then
  local ptat = math.max(num(p[2]), now) + num(p[3])
  local ra = num(p[6])
  if p[1] == 'broken' then
    ra = now + probe
    redis.call('HSET', B .. 'p:' .. pid, 'tat', fmt(ptat), 'lu', fmt(now), 'n', num(p[8]) + 1,
      'ra', fmt(ra))
  else
    redis.call('HSET', B .. 'p:' .. pid, 'tat', fmt(ptat), 'lu', fmt(now), 'n', num(p[8]) + 1)
  end
  pb = math.max(ptat - (num(p[4]) - 1) * num(p[3]), num(p[5]))
  if p[1] == 'broken' then
    pb = math.max(pb, ra)
  end
  redis.call('ZADD', B .. 'proxy-ready', fmt(pb), pid)
end
redis.call('ZADD', KEYS[1], fmt(math.max(session_own(stat, h[4], h[5], h[6]), pb)), best)
if p then
  -- The proxy's next-send time only moved later: every ready session on it becomes
  -- max(its score, pb), which is exactly ZADD XX GT.
  local sibs = redis.call('SMEMBERS', B .. 'p:' .. pid .. ':s')
  if #sibs > 1 then
    local args = {}
    local spb = fmt(pb)
    for i = 1, #sibs do
      args[#args + 1] = spb
      args[#args + 1] = sibs[i]
    end
    redis.call('ZADD', KEYS[1], 'XX', 'GT', unpack(args))
  end
end
if giv > 0 then
  local ntat = math.max(gtat, now) + giv
  -- The key expires once it no longer holds anything back (an absent TAT is a full burst).
  redis.call('SET', KEYS[2], fmt(ntat), 'PX', math.floor((ntat - now) / 1000) + 1000)
end
local seq = redis.call('INCR', KEYS[3])
return {1, best, h[7] or '', pid, (p and p[7]) or '', seq, now}
