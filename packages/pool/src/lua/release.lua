--[[
  release: gives back a lease whose request was never sent (its connection was not ready, or it
  is too late to send it: see "Lease → arrival" in the README), so the budget it took is not
  lost when that can be done exactly, and the session and proxy are rescored.

  KEYS[1] B.."ready"   KEYS[2] B.."proxy-ready"   KEYS[3] B.."global"
  ARGV[1] B
  ARGV[2] session id
  ARGV[3] proxy id of the lease ("" = none)
  ARGV[4] global emission interval µs (0 = no global budget)
  ARGV[5] the lease's admission time µs
  ARGV[6], ARGV[7] the session's TAT before and after the admission (acquire's reply)
  ARGV[8], ARGV[9] the proxy's ("" = none)
  ARGV[10], ARGV[11] the global budget's ("" = none)

  Exact or nothing, per key (session, proxy, global): a TAT still equal to what this admission
  wrote goes back to what it was before, so the state is as if the admission never happened.
  A TAT that moved since (another admission, a cooldown) is left where it is: the budget this
  lease took is lost rather than given back inexactly. Moving a TAT back by one interval
  instead, as this script once did, backdates the admissions that came after: one leased from
  a full bucket at t0, another at t1 > t0, then the first given back leaves the second counted
  as if admitted at t0, and the bucket admits t1 − t0 early (issue 15: a worker's cold leases,
  given back while its siblings leased the same session, put one session a request over the
  upstream's budget). A TAT that moved and came back (a later lease given back exactly) is
  equal again, and this one is then exact too. Returns 1 when the session exists, else 0.
]]
local B = ARGV[1]
local sid, pid = ARGV[2], ARGV[3]
local giv = ARGV[4] + 0
local at = ARGV[5] + 0
local sk = B .. 's:' .. sid
local h = redis.call('HMGET', sk, 'tat', 'n', 'cu', 'label')
if not h[4] then
  return 0
end
redis.call('HSET', sk, 'n', math.max(0, num(h[2]) - 1))
if num(h[3]) <= at and ARGV[7] ~= '' and num(h[1]) == num(ARGV[7]) then
  redis.call('HSET', sk, 'tat', ARGV[6])
end
if pid ~= '' then
  local pk = B .. 'p:' .. pid
  local ph = redis.call('HMGET', pk, 'tat', 'n', 'cu', 'label')
  if ph[4] then
    redis.call('HSET', pk, 'n', math.max(0, num(ph[2]) - 1))
    if num(ph[3]) <= at and ARGV[9] ~= '' and num(ph[1]) == num(ARGV[9]) then
      redis.call('HSET', pk, 'tat', ARGV[8])
    end
    rescore_proxy(B, pid)
  end
end
rescore_session(B, sid, false)
if giv > 0 and ARGV[11] ~= '' then
  local g = redis.call('GET', KEYS[3])
  -- Absent: expired, so the budget is full again and there is nothing to give back.
  if g and num(g) == num(ARGV[11]) then
    local ntat = num(ARGV[10])
    local now = now_us()
    if ntat > now then
      redis.call('SET', KEYS[3], fmt(ntat), 'PX', fmt(math.floor((ntat - now) / 1000) + 1000))
    else
      redis.call('DEL', KEYS[3])
    end
  end
end
return 1
