-- Replace a room's moderation copy with the state read from PostgreSQL at `version`, unless
-- the copy is newer (a rebuild racing a host's change never undoes the change).
-- KEYS: 1 mod, 2 mutes.  ARGV: 1 version, 2 host id, 3 muted (0/1), 4 policy, 5 words JSON,
-- 6 ttl seconds, then pairs author, muted-until ms (0 = until unmuted).
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'host', ARGV[2], 'muted', ARGV[3],
  'policy', ARGV[4], 'words', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
if #ARGV > 6 then
  for i = 7, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
return 1
