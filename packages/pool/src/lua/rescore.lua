--[[
  Ready-set upkeep, prepended (after lib.lua) to every script that moves a session's or a
  proxy's next-send time other than acquire (scripts.ts). They write exact scores. Not a script
  by itself.
]]

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
