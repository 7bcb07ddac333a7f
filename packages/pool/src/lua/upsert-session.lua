--[[
  upsert-session: creates or updates a session (label, bound proxy, budget). Re-importing resets
  its state to active, its backoff exponent and its adaptive rate factor, unless ARGV[7] asks to
  keep an existing member's state. The GCRA state (tat) and a running cooldown are always kept:
  re-importing never grants a fresh burst or ends a cooldown early. No secret is ever stored here.
  Resetting the rate factor also forgets what the adaptive mode learned (rt, tr, ps, pw, mk,
  hd, rg, the window wn, and sy: its next success takes over what its class knows).

  KEYS[1] B.."ready"   KEYS[2] B.."sessions"   KEYS[3] B.."lru"
  ARGV[1] B   ARGV[2] id   ARGV[3] label   ARGV[4] proxy id ("" = none)
  ARGV[5] configured emission interval µs   ARGV[6] burst   ARGV[7] 1 = keep existing state

  Returns 1 when created, 0 when updated.
]]
local B = ARGV[1]
local sid = ARGV[2]
local pid = ARGV[4]
local iv0 = tonumber(ARGV[5])
local keep = ARGV[7] == '1'
local LRU_PAD = 'pad: a value this long keeps the lru hash a hash table, so that each HMGET '
  .. 'of the pick window is O(1) per id (upsert-session.lua)'
local sk = B .. 's:' .. sid
local old = redis.call('HMGET', sk, 'st', 'proxy', 'rf')
local created = old[1] == false or old[1] == nil
if not created and old[2] and old[2] ~= '' and old[2] ~= pid then
  redis.call('SREM', B .. 'p:' .. old[2] .. ':s', sid)
end
if pid ~= '' then
  redis.call('SADD', B .. 'p:' .. pid .. ':s', sid)
end
local rf = 1000
if created then
  redis.call('HSET', sk, 'st', 'active', 'tat', 0, 'cu', 0, 'lu', 0, 'n', 0, 'bk', 0, 'ok', 0,
    'rt', 0, 'tr', 0, 'ps', 0, 'pw', 0, 'mk', 0, 'hd', 0, 'rg', 0, 'wn', 0, 'sy', 0)
elseif keep then
  rf = num(old[3])
  if rf <= 0 then
    rf = 1000
  end
else
  redis.call('HSET', sk, 'st', 'active', 'bk', 0, 'ok', 0, 'rt', 0, 'tr', 0, 'ps', 0, 'pw', 0,
    'mk', 0, 'hd', 0, 'rg', 0, 'wn', 0, 'sy', 0)
end
redis.call('HSET', sk, 'label', ARGV[3], 'proxy', pid, 'iv0', fmt(iv0), 'b', ARGV[6], 'rf', rf,
  'iv', fmt(math.ceil(iv0 * 1000 / rf)))
redis.call('SADD', KEYS[2], sid)
-- The lru hash holds one field per session leased so far. Redis keeps a hash of up to
-- hash-max-listpack-entries (512 by default) short fields as a listpack, where every lookup
-- is a linear scan: acquire's HMGET of the pick window would cost O(pool size). One value
-- longer than hash-max-listpack-value (64 bytes by default) converts the hash to a hash table
-- for good, so the pad field "#" (never a session id) keeps lookups O(1) at any pool size.
redis.call('HSET', KEYS[3], '#', LRU_PAD)
rescore_owner(B, sid)
if created then
  return 1
end
return 0
