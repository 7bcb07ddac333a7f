--[[
  Adaptive mode's learning helpers, prepended (after lib.lua and rescore.lua) to report-success
  and report-throttled only (scripts.ts). Not a script by itself.

  What one session learns is shared with every session of its class — the sessions with the
  same configured interval (iv0), i.e. the same configured budget: the upstream's per-session
  budget and its penalty are properties of the upstream, not of one account. HASH B.."adapt":
    "r:"..iv0  "at:rf:rt:mk:hd"  the class's latest throttle: Redis µs of its report, the rate
                           factor the throttled session was lowered to, the rate learned too
                           high, the mark fast raises stop at (‰ of the configured rate) and
                           whether rt is precise (hd = 1: hold below it). A session that has
                           not seen it yet (its "sy" < at) takes it over on its next success:
                           it remembers rt, mk and hd, and, when it runs at rt or faster,
                           drops to rf and skips one send.
    "w:"..iv0  µs          the upstream's penalty as learned by any session of the class.

  The window (session fields wa, wn, wl): wn successes of requests leased from wa to wl, with
  no gap longer than burst × interval between them (a longer one lets the upstream's bucket
  refill: the window starts again). When the next request is throttled, the upstream — enforcing
  some GCRA budget of rate ρ and burst Bu, its bucket full at wa — admitted wn requests in
  wl − wa and refused the next one at the throttled lease:
    (wn − Bu) / (wl − wa)  <=  ρ  <  (wn + 1 − Bu) / (lease − wa)
  (the right side counts one more request: successes still in flight are not counted yet)
  With Bu guessed as the configured burst (the operator's guess of the upstream's; ARGV), the
  left side is what the session drops to and the right side the ceiling it remembers. A bucket
  not full at wa only makes the drop deeper; a guess above the real burst makes it too shallow,
  which the next throttle corrects with a longer window (the error shrinks as Bu / window).
]]

-- The class record: at, rf, rt, mk, hd (0 when none) and the learned penalty pw (0 = none).
local function class_read(B, iv0)
  local v = redis.call('HMGET', B .. 'adapt', 'r:' .. iv0, 'w:' .. iv0)
  local at, rf, rt, mk, hd = 0, 0, 0, 0, 0
  if v[1] then
    local a, f, t, m, d = string.match(v[1], '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
    at, rf, rt, mk, hd = num(a), num(f), num(t), num(m), num(d)
  end
  return at, rf, rt, mk, hd, num(v[2])
end

local function class_rate(B, iv0, at, rf, rt, mk, hd)
  redis.call('HSET', B .. 'adapt', 'r:' .. iv0,
    fmt(at) .. ':' .. rf .. ':' .. rt .. ':' .. mk .. ':' .. hd)
end

local function class_penalty(B, iv0, pw)
  redis.call('HSET', B .. 'adapt', 'w:' .. iv0, fmt(pw))
end

-- Bounds on the upstream's rate from the window, as rate factors ‰ of the configured rate
-- (iv0 µs): lo, hi; nil when the window says nothing (too short, or idle before the throttle).
local function window_bounds(wa, wn, wl, lease_at, bu, iv0, gap)
  if wn <= bu or wl <= wa or lease_at - wl > gap then
    return nil
  end
  local lo = math.floor((wn - bu) * iv0 * 1000 / (wl - wa))
  -- One more admitted request than counted: the one usually still in flight (its success not
  -- reported yet) when the throttle is.
  local hi = math.floor((wn + 2 - bu) * iv0 * 1000 / (lease_at - wa))
  return lo, math.max(lo, hi)
end
