-- Give a claim's units back to the sale, at most once: the claim is deleted in the same step,
-- so a repeated return (a retried cancel event, a persist failure handled twice) is a no-op.
-- KEYS: 1 meta hash, 2 buyers hash, 3 claims hash, 4 claim times zset (hash tag {flash:ID})
-- ARGV: 1 claim id
-- Returns the stock left after the return, or -1 when the claim was not held.
redis.call('ZREM', KEYS[4], ARGV[1])
local c = redis.call('HGET', KEYS[3], ARGV[1])
if not c then
  return -1
end
redis.call('HDEL', KEYS[3], ARGV[1])
local sep = string.find(c, ':', 1, true)
local user = string.sub(c, 1, sep - 1)
local q = tonumber(string.sub(c, sep + 1))
if redis.call('HEXISTS', KEYS[1], 'loaded') == 0 then
  return -1
end
local left = redis.call('HINCRBY', KEYS[1], 'stock', q)
if redis.call('HINCRBY', KEYS[2], user, -q) <= 0 then
  redis.call('HDEL', KEYS[2], user)
end
return left
