-- Add a writer flush's counts to a room's live hash, in one call (not a command per field).
-- KEYS: 1 the room's live hash (lc:an:{room}:live)
-- ARGV: 1 TTL in seconds, then field, increment pairs
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
