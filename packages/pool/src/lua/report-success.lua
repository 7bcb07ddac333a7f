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
if redis.call('EXISTS', sk) == 1 then
  local h = redis.call('HMGET', sk, 'rf', 'ok', 'iv0')
  rf = num(h[1])
  redis.call('HSET', sk, 'bk', 0)
  if raise_after > 0 and rf < 1000 then
    local ok = num(h[2]) + 1
    if ok >= raise_after then
      rf = math.min(1000, rf + step)
      local iv = math.ceil(num(h[3]) * 1000 / rf)
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
  local st = redis.call('HGET', pk, 'st')
  if st then
    redis.call('HSET', pk, 'bk', 0, 'cb', 0)
    if st == 'broken' then
      redis.call('HSET', pk, 'st', 'active', 'ra', 0)
      rescore_proxy(B, pid)
    end
  end
end
return {now, rf}
