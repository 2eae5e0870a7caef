-- Put pushes back on the wheel that Redis lost: each member given that is neither on the wheel
-- nor leased (being fired) is added at its due time. Re-adding one that was just fired is
-- harmless (the firing checks the row under a lock), but this keeps it rare.
-- KEYS: 1 wheel, 2 leases   ARGV: member1, due1 ms, member2, due2 ms, ...
-- Returns how many members were added.
local added = 0
for i = 1, #ARGV, 2 do
  local m = ARGV[i]
  if not redis.call('ZSCORE', KEYS[1], m) and not redis.call('ZSCORE', KEYS[2], m) then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[i + 1]), m)
    added = added + 1
  end
end
return added
