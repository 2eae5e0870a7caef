-- Add a writer flush's counts to a room's live hash, in one call (not a command per field).
-- KEYS: 1 the room's live hash (lc:an:{room}:live)
-- ARGV: 1 TTL in seconds, 2 the hash's field cap, then field, increment pairs
-- Client events may name any push seq and any custom type, and the hash is read whole every
-- second: a push's field p:<seq>:<type> counts only once the server published that seq (its
-- p:<seq>:at_ms is written before), a new t:custom:<name> only while the hash is under the cap.
local key = KEYS[1]
local cap = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local field = ARGV[i]
  local seq = string.match(field, '^p:(%d+):')
  local ok = true
  if seq then
    ok = redis.call('HEXISTS', key, 'p:' .. seq .. ':at_ms') == 1
  elseif string.sub(field, 1, 9) == 't:custom:' then
    ok = redis.call('HLEN', key) < cap or redis.call('HEXISTS', key, field) == 1
  end
  if ok then
    redis.call('HINCRBY', key, field, ARGV[i + 1])
  end
end
redis.call('EXPIRE', key, ARGV[1])
return 1
