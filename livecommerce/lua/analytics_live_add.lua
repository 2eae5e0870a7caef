-- Add a writer flush's counts to a room's live hash, in one call (not a command per field).
-- KEYS: 1 the room's live hash (lc:an:{room}:live)
-- ARGV: 1 TTL in seconds, 2 the hash's field cap, then field, increment pairs
-- Client events may name any push seq and any custom type, and the hash is read whole every
-- second, so a field that is not there yet is made only while the hash is under the cap —
-- except a push's field p:<seq>:<type> once the server published that seq (its p:<seq>:at_ms
-- is there), which is always counted. A viewer's events for a real push counted on another
-- node before that node's push_published flush are kept too while under the cap (no race).
local key = KEYS[1]
local cap = tonumber(ARGV[2])
local size = redis.call('HLEN', key)
for i = 3, #ARGV, 2 do
  local field = ARGV[i]
  local ok = true
  local seq = string.match(field, '^p:(%d+):')
  if seq or string.sub(field, 1, 9) == 't:custom:' then
    ok = size < cap or redis.call('HEXISTS', key, field) == 1
      or (seq ~= nil and redis.call('HEXISTS', key, 'p:' .. seq .. ':at_ms') == 1)
  end
  if ok and redis.call('HINCRBY', key, field, ARGV[i + 1]) == tonumber(ARGV[i + 1]) then
    size = size + 1  -- a new field (its count is this increment)
  end
end
redis.call('EXPIRE', key, ARGV[1])
return 1
