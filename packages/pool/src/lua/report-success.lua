--[[
  report-success: the leased request got a real answer. Resets the backoff exponents of the
  session and its proxy, closes a broken proxy's circuit (the probe succeeded), and in adaptive
  mode raises a lowered session rate additively after enough successes in a row:
    - below caution × rt (rt = the rate factor that was last throttled; none = the configured
      rate) by `step` of the configured rate every `raise after` successes, up to that mark;
    - from there on cautiously (the limit is just above): by `probe step` of rt every
      `probe after` successes, so that creeping over the real limit costs few throttles.
  Never above the configured rate.
  Adaptive mode also ends a throttle streak's penalty measurement (see report-throttled): after
  a streak with throttles inside the penalty (k >= 2) the learned penalty pw becomes the time
  from the streak's first throttled request (ps) to this one, which got through; after a streak
  whose first cooldown was enough (k = 1) pw shrinks to caution × pw, in case the penalty is
  shorter. A success of a request leased before the streak began (ps) was sent before the
  penalty and says nothing about it: it neither ends the streak nor counts toward a raise.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"
  ARGV[1] B   ARGV[2] session id   ARGV[3] proxy id ("" = none)
  ARGV[4] adaptive: successes needed before one raise (0 = adaptive mode off)
  ARGV[5] adaptive: raise step, ‰ of the configured rate
  ARGV[6] adaptive: caution ‰   ARGV[7] adaptive: probe step, ‰ of rt
  ARGV[8] adaptive: successes needed before one probe step
  ARGV[9] the lease's admission time µs

  Returns {nowUs, rateFactor‰} ({nowUs, -1} when the session no longer exists).
]]
local B = ARGV[1]
local sid = ARGV[2]
local pid = ARGV[3]
local raise_after = tonumber(ARGV[4])
local step = tonumber(ARGV[5])
local caution = tonumber(ARGV[6])
local probe_step = tonumber(ARGV[7])
local probe_after = tonumber(ARGV[8])
local lease_at = tonumber(ARGV[9])
local now = now_us()
local sk = B .. 's:' .. sid
local rf = -1
-- One read per hash, and a write only when something changes: the common success (no
-- backoff running, full rate, circuit closed) is TIME and two HMGETs.
local h = redis.call('HMGET', sk, 'st', 'bk', 'rf', 'ok', 'iv0', 'rt', 'ps', 'pw')
if h[1] then
  rf = num(h[3])
  local k = num(h[2])
  local ps = num(h[7])
  local fresh = raise_after == 0 or lease_at >= ps
  if fresh and h[2] ~= '0' then
    redis.call('HSET', sk, 'bk', 0)
  end
  if raise_after > 0 and fresh and k >= 1 and ps > 0 then
    if k >= 2 then
      redis.call('HSET', sk, 'pw', fmt(lease_at - ps))
    else
      redis.call('HSET', sk, 'pw', fmt(math.floor(num(h[8]) * caution / 1000)))
    end
  end
  if raise_after > 0 and fresh and rf < 1000 then
    local ok = num(h[4]) + 1
    local rt = num(h[6])
    local mark = 1000
    if rt > 0 then
      mark = math.min(1000, math.floor(rt * caution / 1000))
    end
    local fast = rf < mark
    if (fast and ok >= raise_after) or (not fast and ok >= probe_after) then
      if fast then
        rf = math.min(mark, rf + step)
      else
        rf = math.min(1000, rf + math.max(1, math.floor(rt * probe_step / 1000)))
      end
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
