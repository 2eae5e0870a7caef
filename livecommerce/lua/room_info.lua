-- Cache the room's public info (JSON, from PostgreSQL) in its state hash, making the room's
-- epoch first when it has none (see lc_epoch).
-- KEYS: 1 seq, 2 state.  ARGV: 1 channel, 2 room info JSON
lc_epoch(KEYS[1], KEYS[2], ARGV[1], true)
redis.call('HSET', KEYS[2], 'room', ARGV[2])
return 1
