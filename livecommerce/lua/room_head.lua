-- A node's check of a room it serves (after its subscription came back): the room's epoch
-- (renewed first if the stream could have been reset, see lc_epoch) and current seq.
-- KEYS: 1 seq, 2 state.  ARGV: 1 channel
-- Returns {epoch ('' when Redis knows nothing of the room), seq}
local epoch = lc_epoch(KEYS[1], KEYS[2], ARGV[1], false)
return {epoch, tonumber(redis.call('GET', KEYS[1]) or '0')}
