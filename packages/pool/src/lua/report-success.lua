--[[
  report-success: the leased request got a real answer. Resets the backoff exponents of the
  session and its proxy, closes a broken proxy's circuit (the probe succeeded), and in adaptive
  mode raises a lowered session rate additively after enough successes.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"
  ARGV[1] B   ARGV[2] session id   ARGV[3] proxy id ("" = none)
  ARGV[4] adaptive: successes needed before one raise (0 = adaptive mode off)
  ARGV[5] adaptive: raise step, ‰ of the configured rate

  Returns {nowUs, rateFactor‰} ({nowUs, -1} when the session no longer exists).
]]
local B = ARGV[1]
local sid = ARGV[2]
local pid = ARGV[3]
local raise_after = tonumber(ARGV[4])
local step = tonumber(ARGV[5])
local now = now_us()
local sk = B .. 's:' .. sid
local rf = -1
-- One read per hash, and a write only when something changes: the common success (no
-- backoff running, full rate, circuit closed) is TIME and two HMGETs.
local h = redis.call('HMGET', sk, 'st', 'bk', 'rf', 'ok', 'iv0')
if h[1] then
  rf = num(h[3])
  if h[2] ~= '0' then
    redis.call('HSET', sk, 'bk', 0)
  end
  if raise_after > 0 and rf < 1000 then
    local ok = num(h[4]) + 1
    if ok >= raise_after then
      rf = math.min(1000, rf + step)
      local iv = math.ceil(num(h[5]) * 1000 / rf)
      redis.call('HSET', sk, 'rf', rf, 'iv', fmt(iv), 'ok', 0)
      -- A shorter interval shrinks tolerance too: the session's score can only move later.
      rescore_owner(B, sid)
    else
      redis.call('HSET', sk, 'ok', ok)
    end
  end
end
if pid ~= '' then
  local pk = B .. 'p:' .. pid
  local ph = redis.call('HMGET', pk, 'st', 'bk', 'cb')
  if ph[1] == 'broken' then
    redis.call('HSET', pk, 'st', 'active', 'ra', 0, 'bk', 0, 'cb', 0)
    rescore_proxy(B, pid)
  elseif ph[1] and (ph[2] ~= '0' or ph[3] ~= '0') then
    redis.call('HSET', pk, 'bk', 0, 'cb', 0)
  end
end
return {now, rf}
