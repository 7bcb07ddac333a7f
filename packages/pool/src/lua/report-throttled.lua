--[[
  report-throttled: the upstream throttled the leased request (429, "Please wait a few
  minutes"). The session — and the proxy when the pattern points at the IP — cools down for
  max(Retry-After, full jitter r·min(cap, base·2^k)), k = consecutive throttles so far. A
  cooldown only moves later, and the member comes back with an empty burst (tat is set so that
  its first allowed request is at the cooldown's end and the next one a full interval later).

  Adaptive mode (adaptive.lua has the shared helpers and the window's bounds): the first
  throttle of a streak (k = 0: the session had a success since its last throttle) lowers the
  session's rate factor rf. With a usable window of successes before it: to the window's lower
  bound on the upstream's rate, between rf × decrease and rf × caution, and not below the rate
  before the latest raise (rg) unless the window says that was too fast; the ceiling rt is the
  window's upper bound, and raises may go right up to it (mk = rt; hd = 1 when the window was
  long enough to hold below it for a while). Without one: rf × decrease, or rf × caution when
  throttled at or above caution × the previous rt (a small overshoot); rt = the rate throttled,
  mk = caution × rt. Never below the floor. The result goes to the class record, for the
  session's siblings. Throttles later in the streak (k >= 1: the upstream's penalty of the first
  violation is still running) change no rate. A throttle of a request leased before the
  session's previous throttle report (tr) was already in flight when the session cooled down:
  it tells nothing new and only records the error (no rate change, no backoff step, no cooldown
  change).

  Adaptive mode also learns how long the upstream's penalty lasts, because hitting a session
  again inside it is what multiplies 429s: ps = admission time of the request that opened the
  streak; a throttle later in the streak shows the penalty still ran at its admission, so pw
  (the learned penalty) >= lease − ps, and the session waits until ps + 2 × that; a success ends
  the streak (report-success). The first cooldown of a streak lasts at least until ps + pw (the
  session's or its class's): the learned penalty stands in for the Retry-After header Instagram
  never sends; while no penalty is known it is base × (4 + 2r) instead of the full jitter.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"
  ARGV[1] B   ARGV[2] session id   ARGV[3] proxy id ("" = none)
  ARGV[4] r: a uniform random number in [0, 1) (the jitter; from the caller so tests pick it)
  ARGV[5] Retry-After µs (0 = none)   ARGV[6] 1 = the proxy cools down too
  ARGV[7] backoff base µs   ARGV[8] backoff cap µs   ARGV[9] error code
  ARGV[10] adaptive decrease factor ‰ (0 = adaptive mode off)   ARGV[11] adaptive floor ‰
  ARGV[12] adaptive caution ‰   ARGV[13] the throttled lease's admission time µs
  ARGV[14] adaptive: the upstream's burst as guessed (the configured burst; 0 = the session's)

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
local caution = tonumber(ARGV[12])
local lease_at = tonumber(ARGV[13])
local burst_guess = tonumber(ARGV[14]) or 0
local now = now_us()

-- Cools one member down, not before not_before µs; returns the new cooldown end. `unknown`:
-- adaptive mode, a streak's first throttle while the upstream's penalty is not known (see the
-- header): base·4..6 (the upstream says "wait a few minutes"), not the full jitter of base.
local function cool(key, k, iv, b, tat, cu, not_before, unknown)
  local delay
  if unknown then
    delay = math.floor(math.min(cap, base * (4 + 2 * r)))
  else
    delay = full_jitter(r, base, cap, k)
  end
  local until_us = math.max(num(cu), not_before, now + math.max(retry_after, delay))
  local ntat = math.max(num(tat), until_us + (num(b) - 1) * iv)
  redis.call('HSET', key, 'cu', fmt(until_us), 'tat', fmt(ntat), 'bk', k + 1, 'err', code,
    'ea', fmt(now))
  return until_us
end

local s_until = -1
local sk = B .. 's:' .. sid
if redis.call('EXISTS', sk) == 1 then
  local h = redis.call('HMGET', sk, 'bk', 'iv', 'b', 'tat', 'cu', 'rf', 'iv0', 'rt', 'tr', 'ps',
    'pw', 'wa', 'wn', 'wl', 'rg')
  local k = num(h[1])
  local iv = num(h[2])
  if decrease > 0 and lease_at < num(h[9]) then
    -- In flight since before the previous throttle report: nothing new.
    redis.call('HSET', sk, 'err', code, 'ea', fmt(now))
    s_until = math.max(num(h[5]), now)
  else
    local not_before = 0
    local unknown = false
    if decrease > 0 then
      local iv0 = h[7]
      local cpw = select(6, class_read(B, iv0))
      local pw = math.max(num(h[11]), cpw)
      redis.call('HSET', sk, 'tr', fmt(now))
      if k == 0 then
        redis.call('HSET', sk, 'ps', fmt(lease_at))
        if pw > 0 then
          not_before = lease_at + pw
        else
          unknown = true
        end
      elseif lease_at > num(h[10]) then
        -- The penalty outlasted lease − ps (a lower bound): wait twice that from its start.
        local npw = math.max(num(h[11]), lease_at - num(h[10]))
        redis.call('HSET', sk, 'pw', fmt(npw))
        if npw > cpw then
          class_penalty(B, iv0, npw)
        end
        not_before = num(h[10]) + 2 * npw
      end
      if k == 0 then
        local rf0 = num(h[6])
        if rf0 <= 0 then
          rf0 = 1000
        end
        local rt0 = num(h[8])
        local bu = math.max(num(h[3]), burst_guess)
        local lo, hi = window_bounds(num(h[12]), num(h[13]), num(h[14]), lease_at, bu, num(iv0),
          bu * iv)
        local rf, rt, mk
        local hd = 0
        if lo then
          -- A long window (50 successes per burst request) pins the rate down: hold there.
          if num(h[13]) >= 10 * bu then
            hd = 1
          end
          -- Between the window's lower bound and caution × the throttled rate, never below the
          -- usual decrease; the ceiling remembered is the window's upper bound, and raises may
          -- go right up to it (it is an estimate, not a rate seen throttled).
          rf = math.min(math.floor(rf0 * caution / 1000),
            math.max(math.floor(rf0 * decrease / 1000), lo))
          rt = math.min(rf0, hi)
          mk = rt
        else
          local factor = decrease
          if rt0 > 0 and rf0 * 1000 >= caution * rt0 then
            factor = caution
          end
          rf = math.floor(rf0 * factor / 1000)
          rt = rf0
          mk = math.floor(rt * caution / 1000)
        end
        -- The rate before the latest raise got through: the limit is between it and rf0 —
        -- unless the window says it was too fast already (it got through on the burst).
        local rg = num(h[15])
        if rg > 0 and rg < rf0 and (not lo or rg <= hi) then
          rf = math.max(rf, rg)
        end
        rf = math.max(floor_rf, rf)
        rt = math.max(rt, rf)
        mk = math.max(mk, rf)
        iv = math.ceil(num(iv0) * 1000 / rf)
        redis.call('HSET', sk, 'rf', rf, 'iv', fmt(iv), 'rt', rt, 'mk', mk, 'hd', hd, 'rg', 0,
          'sy', fmt(now))
        class_rate(B, iv0, now, rf, rt, mk, hd)
      end
    end
    s_until = cool(sk, k, iv, h[3], h[4], h[5], not_before, unknown)
    redis.call('HSET', sk, 'ok', 0, 'wn', 0)
  end
end

local p_until = -1
if ip and pid ~= '' then
  local pk = B .. 'p:' .. pid
  if redis.call('EXISTS', pk) == 1 then
    local p = redis.call('HMGET', pk, 'bk', 'iv', 'b', 'tat', 'cu')
    p_until = cool(pk, num(p[1]), num(p[2]), p[3], p[4], p[5], 0, false)
    rescore_proxy(B, pid)
  end
end
if s_until >= 0 then
  rescore_owner(B, sid)
end
return {now, s_until, p_until}
