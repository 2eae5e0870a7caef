-- Take flash-sale stock for one purchase attempt: every check happens BEFORE anything is
-- decremented, so a refused attempt (too early, too late, a duplicate, over the limit, sold
-- out) changes nothing.
-- KEYS: 1 meta hash, 2 buyers hash, 3 claims hash, 4 claim times zset (hash tag {flash:ID})
-- ARGV: 1 user id, 2 quantity, 3 claim id (derived from user + Idempotency-Key)
-- Returns {code, stock_left}; code is one of ok, not_loaded, not_started, ended, duplicate,
-- limit_reached, sold_out.
local meta = redis.call('HMGET', KEYS[1], 'loaded', 'start_ms', 'end_ms', 'limit', 'stock',
                        'expire_ms')
if not meta[1] then
  return {'not_loaded', 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stock = tonumber(meta[5])
if now < tonumber(meta[2]) then
  return {'not_started', stock}
end
if now >= tonumber(meta[3]) then
  return {'ended', stock}
end
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then
  return {'duplicate', stock}
end
local q = tonumber(ARGV[2])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if held + q > tonumber(meta[4]) then
  return {'limit_reached', stock}
end
if stock < q then
  return {'sold_out', stock}
end
redis.call('HINCRBY', KEYS[1], 'stock', -q)
redis.call('HINCRBY', KEYS[2], ARGV[1], q)
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1] .. ':' .. ARGV[2])
-- Until PostgreSQL has the order, the claim is also timed: a node that dies between this take and
-- its PostgreSQL write leaves a claim the stale-claim sweep gives back.
redis.call('ZADD', KEYS[4], now, ARGV[3])
redis.call('PEXPIREAT', KEYS[2], meta[6])
redis.call('PEXPIREAT', KEYS[3], meta[6])
redis.call('PEXPIREAT', KEYS[4], meta[6])
return {'ok', stock - q}
