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
  ARGV[6] optional session id: lease that session only (any stored state: `sessions check`
          asks the upstream about invalid or disabled sessions too), or say how long until it
          may send; "none" when it does not exist or its proxy is disabled or gone. A session
          that is not active is not put back into the ready set.

  Returns
    {1, sessionId, sessionLabel, proxyId ("" = none), proxyLabel, leaseSeq, nowUs,
     sessionTatBefore, sessionTatAfter, proxyTatBefore, proxyTatAfter, globalTatBefore,
     globalTatAfter}  admitted; the TATs (µs as decimal strings, "" = no proxy / no global
     budget) are what release.lua needs to undo this admission exactly
    {0, waitUs, "budget"}   nothing may send now; the earliest admission is waitUs from now
    {0, 0, "none"}          no leasable session at all (all invalid/disabled/without a proxy)
  A rejected call writes nothing.

  Cost, whatever the pool size: O(log n) on the ready set and 10 Redis calls on an admission
  (TIME, ZRANGEBYSCORE, HMGET of the window's last-used times, HMGET session, HMGET proxy,
  HSET session, HSET lru, HSET proxy, ZADD ready, INCR), plus GET/SET with a global budget, plus
  ZADD proxy-ready, SMEMBERS and one ZADD for the proxy's sessions when the admission uses up
  the proxy's budget (see "Scores" in lib.lua). Most of a call's cost is per Redis call and per
  reply element (the conversion to Lua), so the script reads only what it needs, converts each
  number once (`x + 0`: Lua 5.1's tonumber parses twice) and passes strings where it has them.
]]
local B = ARGV[1]
local giv = ARGV[3] + 0
local now = now_us()

-- The earliest time anything may be admitted, for a rejection.
local function wait_reply(gallow)
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #head == 0 then
    return {0, 0, 'none'}
  end
  return {0, math.max(1, math.max(head[2] + 0, gallow) - now), 'budget'}
end

local gtat = 0
if giv > 0 then
  gtat = (redis.call('GET', KEYS[2]) or 0) + 0
  local gallow = gtat - (ARGV[4] - 1) * giv
  if gallow > now then
    return wait_reply(gallow)
  end
end

local snow = fmt(now)
local target = ARGV[6] or ''
local cands
if target ~= '' then
  cands = {target}
else
  cands = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', snow, 'LIMIT', '0', ARGV[2])
end
local nc = #cands
if nc == 0 then
  return wait_reply(0)
end

-- Least recently used first (ties keep the ready order: the one that has waited longest).
-- Scores say who may send (lib.lua), but the pick is checked anyway (state, own GCRA,
-- cooldown, proxy) and a stale one is skipped rather than repaired on this path.
local lus
if nc > 1 then
  lus = redis.call('HMGET', KEYS[4], unpack(cands))
  for i = 1, nc do
    lus[i] = (lus[i] or 0) + 0
  end
else
  lus = {0}
end
-- The pick and what its commit needs, each number converted once.
local best, label, pid, n, stat, sown, bst, stat0
local p -- the proxy: {state, new tat, label, new use count}, nil without one
local pb = 0 -- the proxy's next-send time after this admission
for _ = 1, nc do
  local i, li = nil, nil
  for j = 1, nc do
    local l = lus[j]
    if l and (i == nil or l < li) then
      i, li = j, l
    end
  end
  lus[i] = false
  local sid = cands[i]
  local h = redis.call('HMGET', B .. 's:' .. sid, 'st', 'proxy', 'tat', 'iv', 'b', 'cu', 'label', 'n')
  if h[1] == 'active' or (target ~= '' and h[1]) then
    local tat, iv, cu = (h[3] or 0) + 0, (h[4] or 0) + 0, (h[6] or 0) + 0
    local tau = ((h[5] or 1) - 1) * iv
    if math.max(tat - tau, cu) <= now then
      local spid = h[2] or ''
      local ok = spid == ''
      if not ok then
        local pk = B .. 'p:' .. spid
        local ph = redis.call('HMGET', pk, 'st', 'tat', 'iv', 'b', 'cu', 'label', 'n')
        local pst = ph[1]
        if pst and pst ~= 'disabled' then
          local ptat, piv, pcu = (ph[2] or 0) + 0, (ph[3] or 0) + 0, (ph[5] or 0) + 0
          local ptau = ((ph[4] or 1) - 1) * piv
          local ra = 0
          if pst == 'broken' then
            ra = (redis.call('HGET', pk, 'ra') or 0) + 0
          end
          if math.max(ptat - ptau, pcu, ra) <= now then
            ok = true
            local nptat = math.max(ptat, now) + piv
            pb = math.max(nptat - ptau, pcu)
            p = {pst, nptat, ph[6] or '', (ph[7] or 0) + 1, ptat}
          end
        end
      end
      if ok then
        best, label, pid, n, bst = sid, h[7] or '', spid, (h[8] or 0) + 1, h[1]
        stat0 = tat
        stat = math.max(tat, now) + iv
        sown = math.max(stat - tau, cu)
        break
      end
    end
  end
end
if best == nil then
  if target ~= '' then
    -- The named session may not send now: when it may (its GCRA, cooldown, proxy).
    local h = redis.call('HMGET', B .. 's:' .. target, 'st', 'proxy', 'tat', 'iv', 'b', 'cu')
    if not h[1] then
      return {0, 0, 'none'}
    end
    local t = math.max(((h[3] or 0) + 0) - ((h[5] or 1) - 1) * ((h[4] or 0) + 0), (h[6] or 0) + 0)
    if h[2] and h[2] ~= '' then
      local ph = redis.call('HMGET', B .. 'p:' .. h[2], 'st', 'tat', 'iv', 'b', 'cu', 'ra')
      if not ph[1] or ph[1] == 'disabled' then
        return {0, 0, 'none'}
      end
      t = math.max(t, ((ph[2] or 0) + 0) - ((ph[4] or 1) - 1) * ((ph[3] or 0) + 0), (ph[5] or 0) + 0)
      if ph[1] == 'broken' then
        t = math.max(t, (ph[6] or 0) + 0)
      end
    end
    return {0, math.max(1, t - now), 'budget'}
  end
  -- Only reachable if a score is stale: a short wait rather than a write on a rejection.
  return {0, 1000, 'budget'}
end

-- Commit: session, proxy, global, together.
redis.call('HSET', B .. 's:' .. best, 'tat', fmt(stat), 'lu', snow, 'n', n)
redis.call('HSET', KEYS[4], best, snow)
local score = math.max(sown, pb)
if p then
  local pk = B .. 'p:' .. pid
  if p[1] == 'broken' then
    -- A probe: hold the half-open proxy so that one lease at a time tests it.
    local ra = now + ARGV[5]
    redis.call('HSET', pk, 'tat', fmt(p[2]), 'lu', snow, 'n', p[4], 'ra', fmt(ra))
    pb = math.max(pb, ra)
    score = math.max(score, pb)
  else
    redis.call('HSET', pk, 'tat', fmt(p[2]), 'lu', snow, 'n', p[4])
  end
  if pb > now then
    -- The proxy's budget is used up: its next-send time moved into the future, and every
    -- ready session on it becomes max(its score, pb), which is exactly ZADD XX GT (an
    -- admission only moves it later). One ZADD for the pick and its siblings.
    local spb = fmt(pb)
    redis.call('ZADD', B .. 'proxy-ready', spb, pid)
    local sibs = redis.call('SMEMBERS', pk .. ':s')
    local args = {'XX', 'GT', fmt(score), best}
    for i = 1, #sibs do
      if sibs[i] ~= best then
        args[#args + 1] = spb
        args[#args + 1] = sibs[i]
      end
    end
    redis.call('ZADD', KEYS[1], unpack(args))
    score = nil
  end
  -- Otherwise the proxy may still send now: its score and its other sessions' stay in the
  -- past, which says exactly that (lib.lua, "Scores").
end
if score and bst == 'active' then
  redis.call('ZADD', KEYS[1], fmt(score), best)
end
local g0, g1 = '', ''
if giv > 0 then
  local ntat = math.max(gtat, now) + giv
  -- The key expires once it no longer holds anything back (an absent TAT is a full burst).
  redis.call('SET', KEYS[2], fmt(ntat), 'PX', fmt(math.floor((ntat - now) / 1000) + 1000))
  g0, g1 = fmt(gtat), fmt(ntat)
end
local seq = redis.call('INCR', KEYS[3])
local p0, p1 = '', ''
if p then
  p0, p1 = fmt(p[5]), fmt(p[2])
end
return {1, best, label, pid, (p and p[3]) or '', seq, now, fmt(stat0), fmt(stat), p0, p1, g0, g1}
