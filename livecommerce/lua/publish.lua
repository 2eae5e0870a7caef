-- KEYS: 1 seq, 2 history, 3 state, 4 idempotency key (all share the room's hash tag)
-- ARGV: 1 channel, 2 body JSON object, 3 max history count, 4 max history age ms,
--       5 state op ('' | 'set' | 'del'), 6 state field, 7 idempotent ('1'/'0'), 8 idem TTL s
-- Returns {seq, frame, fresh}: fresh = 0 when the idempotency key had already published.
if ARGV[7] == '1' then
  local existing = redis.call('GET', KEYS[4])
  if existing then
    return {tonumber(existing), '', 0}
  end
end
local res = lc_publish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]),
                       tonumber(ARGV[4]), ARGV[5], ARGV[6])
if ARGV[7] == '1' then
  redis.call('SET', KEYS[4], res[1], 'EX', tonumber(ARGV[8]))
end
return {res[1], res[2], 1}
