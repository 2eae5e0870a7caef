-- Atomic view of a room for a joining (or resyncing) viewer: its epoch (renewed first if the
-- stream could have been reset, see lc_epoch), current seq, state hash, and the frames after
-- last_seq when the history still holds every one of them.
-- KEYS: 1 seq, 2 history, 3 state.  ARGV: 1 last_seq (-1 = not resuming), 2 channel
-- Returns {seq, state (flat HGETALL list), missed frames, complete (1/0)}
lc_epoch(KEYS[1], KEYS[3], ARGV[2], false)
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local state = redis.call('HGETALL', KEYS[3])
local last = tonumber(ARGV[1])
local missed = {}
local complete = 1
if last >= 0 then
  if last > seq then
    complete = 0
  elseif last < seq then
    local items = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. last, seq)
    if #items ~= seq - last then
      complete = 0
    else
      for i = 1, #items do
        local bar = string.find(items[i], '|', 1, true)
        missed[i] = string.sub(items[i], bar + 1)
      end
    end
  end
end
return {seq, state, missed, complete}
