--[[
  release: gives back a lease whose request was never sent (its connection was not ready, or it
  is too late to send it: see "Lease → arrival" in the README), so the budget it took is not
  lost: the session's, its proxy's and the global TAT move back one interval each, and the
  session and proxy are rescored exactly.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"   KEYS[3] B.."global"
  ARGV[1] B
  ARGV[2] session id
  ARGV[3] proxy id of the lease ("" = none)
  ARGV[4] global emission interval µs (0 = no global budget)
  ARGV[5] the lease's admission time µs

  Moving a TAT back by one interval undoes exactly what the admission added (GCRA: the state
  after is as if that admission never happened; a TAT left in the past is a full bucket, as
  when idle). A cooldown that began after the admission keeps the session's TAT where the
  throttle report put it (a cooled session comes back with an empty burst). Returns 1 when the
  session exists, else 0.
]]
local B = ARGV[1]
local sid, pid = ARGV[2], ARGV[3]
local giv = ARGV[4] + 0
local at = ARGV[5] + 0
local sk = B .. 's:' .. sid
local h = redis.call('HMGET', sk, 'tat', 'iv', 'n', 'cu', 'label')
if not h[5] then
  return 0
end
if num(h[4]) <= at then
  redis.call('HSET', sk, 'tat', fmt(num(h[1]) - num(h[2])), 'n', math.max(0, num(h[3]) - 1))
end
if pid ~= '' then
  local pk = B .. 'p:' .. pid
  local ph = redis.call('HMGET', pk, 'tat', 'iv', 'n', 'cu', 'label')
  if ph[5] then
    if num(ph[4]) <= at then
      redis.call('HSET', pk, 'tat', fmt(num(ph[1]) - num(ph[2])), 'n', math.max(0, num(ph[3]) - 1))
    end
    rescore_proxy(B, pid)
  end
end
rescore_session(B, sid, false)
if giv > 0 then
  local g = redis.call('GET', KEYS[3])
  if g then
    local ntat = (g + 0) - giv
    local now = now_us()
    if ntat > now then
      redis.call('SET', KEYS[3], fmt(ntat), 'PX', fmt(math.floor((ntat - now) / 1000) + 1000))
    else
      redis.call('DEL', KEYS[3])
    end
  end
end
return 1
