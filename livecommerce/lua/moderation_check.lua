-- The comment path's one read: the room's rules and whether this author is muted now.
-- KEYS: 1 mod, 2 mutes.  ARGV: 1 author ("user:12"), 2 the version the caller has words for.
-- Returns false when the copy is missing (rebuild from PostgreSQL), else
-- {version, host, muted, policy, words JSON or false (caller's are current), muted-until}
-- where muted-until is -1 (not muted), 0 (until unmuted) or ms since the epoch.
local m = redis.call('HMGET', KEYS[1], 'v', 'host', 'muted', 'policy')
if not m[1] then
  return false
end
local words = false
if m[1] ~= ARGV[2] then
  words = redis.call('HGET', KEYS[1], 'words')
end
local untl = -1
local u = redis.call('HGET', KEYS[2], ARGV[1])
if u then
  u = tonumber(u)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if u == 0 or u > now then
    untl = u
  end
end
return {m[1], m[2], m[3], m[4], words, untl}
