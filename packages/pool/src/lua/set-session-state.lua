--[[
  set-session-state: markSession / enableSession / reportSessionDead. Any state but active
  takes the session out of the ready set: it is never leased again until it is set active
  (enable) or re-imported (upsert-session). Setting active leaves a running cooldown in place.

  KEYS[1] B.."ready"
  ARGV[1] B   ARGV[2] session id
  ARGV[3] state: active | invalid | challenge | suspended | disabled
  ARGV[4] error code to record ("" = none)

  Returns {1, previousState} or {0, ""} when the session does not exist.
]]
local B = ARGV[1]
local sid = ARGV[2]
local sk = B .. 's:' .. sid
local prev = redis.call('HGET', sk, 'st')
if not prev then
  return {0, ''}
end
redis.call('HSET', sk, 'st', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', sk, 'err', ARGV[4], 'ea', fmt(now_us()))
end
if ARGV[3] == 'active' then
  redis.call('HSET', sk, 'bk', 0)
end
rescore_owner(B, sid)
return {1, prev}
