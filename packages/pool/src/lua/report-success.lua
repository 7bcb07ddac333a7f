--[[
  report-success: the leased request got a real answer. Resets the backoff exponents of the
  session and its proxy, closes a broken proxy's circuit (the probe succeeded), and in adaptive
  mode (adaptive.lua):
    - counts the success into the session's window (wa, wn, wl; restarted after a gap longer
      than burst × interval), which the next throttle learns from;
    - takes over what the session's class learned since it last looked (sy < the record's at):
      rt, mk, hd, and when running faster than the class's rate drops to it (skipping one send
      when at least as fast as the rate that got throttled);
    - raises a lowered rate: below the mark mk, half the way to it (by `step` at most) every
      `raise after` successes; from the mark up to rt by `probe step` of rt every `probe after`;
      above rt by 2 × `probe step` every `raise after` while rt is rough (hd = 0), by `probe
      step` every 10 × `probe after` once it is precise (hd = 1). Each raise remembers the rate
      before it (rg). Never above the configured rate.
  Adaptive mode also ends a throttle streak's penalty measurement (see report-throttled): after
  a streak with throttles inside the penalty (k >= 2) the learned penalty pw becomes three
  quarters of the way from the last throttled offset to this request's (lease − ps); after a
  streak whose first cooldown was enough (k = 1) pw shrinks to caution × pw (or, unknown until
  now, becomes lease − ps). It goes to the class record too. A success of a request leased
  before the streak began (ps) was sent before the penalty and says nothing about it: it neither
  ends the streak nor counts toward a raise.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"
  ARGV[1] B   ARGV[2] session id   ARGV[3] proxy id ("" = none)
  ARGV[4] adaptive: successes needed before one raise (0 = adaptive mode off)
  ARGV[5] adaptive: raise step, ‰ of the configured rate
  ARGV[6] adaptive: caution ‰   ARGV[7] adaptive: probe step, ‰ of rt
  ARGV[8] adaptive: successes needed before one probe step
  ARGV[9] the lease's admission time µs
  ARGV[10] adaptive: the upstream's burst as guessed (the configured burst; 0 = the session's)

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
local burst_guess = tonumber(ARGV[10]) or 0
local now = now_us()
local sk = B .. 's:' .. sid
local rf = -1
-- One read per hash, and a write only when something changes: the common success without
-- adaptive mode (no backoff running, circuit closed) is TIME and two HMGETs.
local h = redis.call('HMGET', sk, 'st', 'bk', 'rf', 'ok', 'iv0', 'rt', 'ps', 'pw', 'wa', 'wn',
  'wl', 'sy', 'iv', 'b', 'tat', 'mk', 'hd')
if h[1] then
  rf = num(h[3])
  local k = num(h[2])
  local ps = num(h[7])
  local fresh = raise_after == 0 or lease_at >= ps
  if fresh and h[2] ~= '0' then
    redis.call('HSET', sk, 'bk', 0)
  end
  if raise_after > 0 and fresh then
    local iv0 = h[5]
    local set = {}
    if k >= 1 and ps > 0 then
      local pw
      local cpw = select(6, class_read(B, iv0))
      local known = math.max(num(h[8]), cpw)
      if k >= 2 then
        -- It ran at the streak's last throttle (pw holds that offset) and is over now: three
        -- quarters of the way from that to this.
        local lo = num(h[8])
        pw = lo + math.floor((lease_at - ps - lo) * 3 / 4)
      elseif known == 0 then
        -- The first cooldown of an unknown penalty was enough: at most this long.
        pw = lease_at - ps
      else
        pw = math.floor(known * caution / 1000)
      end
      set[#set + 1] = 'pw'
      set[#set + 1] = fmt(pw)
      class_penalty(B, iv0, pw)
    end
    -- The window of successes (adaptive.lua).
    local iv = num(h[13])
    local wa, wn, wl = num(h[9]), num(h[10]), num(h[11])
    if wn == 0 or lease_at - wl > math.max(num(h[14]), burst_guess) * iv then
      wa, wn = lease_at, 1
      set[#set + 1] = 'wa'
      set[#set + 1] = fmt(wa)
    else
      wn = wn + 1
    end
    set[#set + 1] = 'wn'
    set[#set + 1] = wn
    if lease_at > wl then
      set[#set + 1] = 'wl'
      set[#set + 1] = fmt(lease_at)
    end
    -- What a sibling of the class learned since this session last looked.
    local rt = num(h[6])
    local ok = num(h[4]) + 1
    local moved = false
    local mk, hd = num(h[16]), num(h[17])
    local cat, crf, crt, cmk, chd = class_read(B, iv0)
    if cat > num(h[12]) then
      set[#set + 1] = 'sy'
      set[#set + 1] = fmt(cat)
      if crt > 0 and (rt == 0 or crt < rt) then
        rt, mk, hd = crt, cmk, chd
        set[#set + 1] = 'rt'
        set[#set + 1] = rt
        set[#set + 1] = 'mk'
        set[#set + 1] = mk
        set[#set + 1] = 'hd'
        set[#set + 1] = hd
      end
      if crt > 0 and crf < rf then
        -- Faster than the rate a sibling was lowered to: slow down to it now, and when at least
        -- as fast as the sibling was throttled at, skip one send so that the upstream's bucket,
        -- as full as the sibling's was, drains a little.
        if rf >= crt then
          set[#set + 1] = 'tat'
          set[#set + 1] = fmt(math.max(num(h[15]), now) + math.ceil(num(iv0) * 1000 / crf))
        end
        rf = crf
        ok = 0
        moved = true
      end
    end
    if rf < 1000 and not moved then
      local mark = 1000
      if rt > 0 then
        -- mk: where raises stop being fast (report-throttled; older sessions have none).
        if mk <= 0 then
          mk = math.floor(rt * caution / 1000)
        end
        mark = math.min(1000, mk)
      end
      local fast = rf < mark
      local need, pstep = probe_after, probe_step
      if fast then
        need = raise_after
      elseif rt > 0 and rf >= rt then
        if hd == 1 then
          need = 10 * probe_after -- above a precise ceiling: stay a while longer
        else
          need, pstep = raise_after, 2 * probe_step -- a rough one: find the limit soon
        end
      end
      if ok >= need then
        set[#set + 1] = 'rg'
        set[#set + 1] = rf
        if fast then
          -- Half the way to the mark, by step at most.
          rf = math.min(mark, rf + math.max(1, math.min(step, math.ceil((mark - rf) / 2))))
        else
          rf = math.min(1000, rf + math.max(1, math.floor(rt * pstep / 1000)))
        end
        ok = 0
        moved = true
      end
    end
    if moved then
      set[#set + 1] = 'rf'
      set[#set + 1] = rf
      set[#set + 1] = 'iv'
      set[#set + 1] = fmt(math.ceil(num(iv0) * 1000 / rf))
    end
    if rf < 1000 or moved then
      set[#set + 1] = 'ok'
      set[#set + 1] = ok
    end
    redis.call('HSET', sk, unpack(set))
    if moved then
      -- A new interval moves the session's next-send time (either way): rescore it exactly.
      rescore_owner(B, sid)
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
