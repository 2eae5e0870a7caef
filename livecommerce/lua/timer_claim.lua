-- Claim every push due within the look-ahead (up to a batch) and every push whose lease expired,
-- atomically. The look-ahead lets a node lock and build a push just before its due time, so only
-- the publish itself is left for the due time.
-- A claimed member moves from the wheel to the lease set with score = lease expiry; the node
-- acks (removes) it after delivering. If it dies first, the lease expires and any node's next
-- claim takes it again (delivery is idempotent, so a slow node finishing late is harmless).
-- KEYS: 1 wheel, 2 leases, 3 built marker   ARGV: 1 lease ms, 2 batch, 3 look-ahead ms
-- Returns {now us, {members}, next due ms or '', next lease expiry ms or '', built 0/1}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local batch = tonumber(ARGV[2])
local ahead = tonumber(ARGV[3])
local lease_until = now + ahead + tonumber(ARGV[1])
local out = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, batch)
for i = 1, #expired do
  redis.call('ZADD', KEYS[2], lease_until, expired[i])
  out[#out + 1] = expired[i]
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + ahead, 'LIMIT', 0, batch)
for i = 1, #due do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], lease_until, due[i])
  out[#out + 1] = due[i]
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local nl = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])), out, nxt[2] or '', nl[2] or '', redis.call('EXISTS', KEYS[3])}
