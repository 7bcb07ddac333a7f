--[[
  Shared helpers, prepended to every pool script when it is loaded (scripts.ts); rescore.lua
  (the ready-set upkeep) follows it in every script but acquire and snapshot, which need only
  these. Not a script by itself.

  Key layout (B = ARGV[1] = "<prefix>:{<prefix>:pool}:", one hash tag for the whole pool):
    B.."sessions"        SET   every session id
    B.."ready"           ZSET  leasable sessions, score = µs (Redis time) when it may next send,
                               counting its own GCRA, its cooldown and its proxy's block
                               (exact when in the future; see "Scores" below)
    B.."proxies"         SET   every proxy id
    B.."proxy-ready"     ZSET  proxies not disabled, score = µs when the proxy may next send
                               (same rule)
    B.."s:"..id          HASH  one session (fields below)
    B.."p:"..id          HASH  one proxy (fields below)
    B.."p:"..id..":s"    SET   ids of the sessions bound to proxy id
    B.."global"          STRING TAT of the optional global budget, µs
    B.."seq"             STRING lease counter
    B.."lru"             HASH  session id → last lease µs (the pick window's LRU in one HMGET),
                               and the pad field "#" that keeps it a hash table (upsert-session)
    B.."adapt"           HASH  adaptive mode's class records, per configured interval (adaptive.lua)

  Session hash: label, proxy ("" = none), st (active|invalid|challenge|suspended|disabled),
    iv0 (configured emission interval µs), iv (effective interval µs, > iv0 when adaptive mode
    lowered the rate), b (burst), rf (rate factor ‰, 1000 = configured), tat (GCRA theoretical
    arrival time µs), cu (cooldown until µs), lu (last lease µs), n (leases), bk (consecutive
    throttles = backoff exponent), ok (successes since the last rate change), rt (adaptive: the
    rate factor ‰ that was last throttled, 0 = none), tr (adaptive: µs of the last throttle report),
    ps (adaptive: admission µs of the request that opened the latest throttle streak), pw
    (adaptive: the upstream's penalty as learned, µs), mk (adaptive: the rate factor fast raises
    stop at), hd (adaptive: 1 = rt is precise, hold below it), rg (adaptive: the rate factor
    before the latest raise), wa, wn, wl (adaptive: the window of successes: first and last
    lease µs, count), sy (adaptive: the class record last taken over, µs), err, ea (last error
    code and µs).
  Proxy hash: label, st (active|broken|disabled), iv, b, tat, cu, ra (broken: no lease before
    this µs), lu, n, bk (consecutive throttles), cb (consecutive breaks), err, ea.

  Scores (ready, proxy-ready): a score in the future is the exact next-send time; a score in
  the past only says "may send now", and may be earlier than the exact (also past) time.
  acquire leaves such past scores alone: a proxy that still has budget after an admission does
  not move its other sessions (their scores stay in the past), and its own proxy-ready score is
  written only when it moves into the future. Every other change of a next-send time rescores
  exactly (rescore.lua). So at any time t, `score <= t` <=> may send at t, which is all the pick
  and the wait reply rely on; a past score's value only orders the ready sessions for the pick
  window. (Redis TIME is the wall clock: should it step back, acquire still checks its pick
  against the hashes and skips a stale one.)

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
  return t[1] * 1000000 + t[2]
end
