-- Load a sale's stock, buyers and live claims (computed from PostgreSQL) into Redis, unless
-- another node loaded it first: the first load wins, later ones change nothing.
-- KEYS: 1 meta hash, 2 buyers hash, 3 claims hash, 4 claim times zset (hash tag {flash:ID})
-- ARGV: 1 start ms, 2 end ms, 3 per-user limit, 4 stock left, 5 expire-at ms,
--       6 number of buyers B, then B pairs (user id, units), then pairs (claim id, "user:units")
-- Returns 1 when loaded by this call, 0 when it was already loaded.
if redis.call('HEXISTS', KEYS[1], 'loaded') == 1 then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])  -- loaded claims are all in PostgreSQL
redis.call('HSET', KEYS[1], 'loaded', '1', 'start_ms', ARGV[1], 'end_ms', ARGV[2],
           'limit', ARGV[3], 'stock', ARGV[4], 'expire_ms', ARGV[5])
local nb = tonumber(ARGV[6])
local i = 7
for _ = 1, nb do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for k = 1, 3 do
  redis.call('PEXPIREAT', KEYS[k], ARGV[5])
end
return 1
