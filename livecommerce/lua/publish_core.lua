-- Shared body of every script that publishes a room message or reads a room for a viewer
-- (prepended at load time).
local function lc_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A room channel that ends with the room's hash tag ("lc:{room:ID}", cluster mode) is a sharded
-- channel: SPUBLISH reaches the nodes subscribed on the room's shard, atomically with the keys
-- this script updates (same slot). "lc:room:ID" (one Redis) is a classic channel.
local function lc_pub(channel, message)
  if string.byte(channel, -1) == 125 then -- '}'
    redis.call('SPUBLISH', channel, message)
  else
    redis.call('PUBLISH', channel, message)
  end
end

-- The room's epoch, checked against this Redis process (docs/protocol.md, "Epochs").
-- The state hash records the epoch and the run_id of the Redis process that made it. A new
-- epoch is made (and announced on the room channel as {"epoch":"..."} before anything else of
-- it) whenever the stream could have been reset: the state has no epoch (first use, keys lost),
-- the seq key is gone while the state survived, or the run_id differs — Redis restarted, with
-- or without its data, possibly from an older snapshot or AOF, or failed over to a replica. A
-- snapshot restore brings back the old hash, but never the run_id of the process that wrote it.
-- On a new epoch the cached room info is dropped (it may be older than PostgreSQL's), and a
-- missing seq key starts again at 0.
-- create = false (a read for a viewer): a room Redis knows nothing of is left untouched ('').
local function lc_epoch(seq_key, state_key, channel, create)
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
  local cur = redis.call('HMGET', state_key, 'run', 'epoch')
  local has_seq = redis.call('EXISTS', seq_key) == 1
  if cur[1] == run and cur[2] and has_seq then
    return cur[2]
  end
  if not create and not cur[2] and not has_seq then
    return ''
  end
  local t = redis.call('TIME')
  local epoch = string.sub(redis.sha1hex(run .. ':' .. t[1] .. ':' .. t[2] .. ':' .. state_key), 1, 12)
  if cur[2] then
    redis.call('HDEL', state_key, 'room')
  end
  redis.call('HSET', state_key, 'run', run, 'epoch', epoch)
  if not has_seq then
    redis.call('SET', seq_key, 0)
  end
  lc_pub(channel, '{"epoch":"' .. epoch .. '"}')
  return epoch
end

-- One atomic step: next sequence number, frame = body with "seq" and server "ts" spliced in,
-- append to the bounded history (by count and by age), optional state update, PUBLISH.
local function lc_publish(seq_key, hist_key, state_key, channel, body, max_count, max_age_ms,
                          state_op, state_field)
  lc_epoch(seq_key, state_key, channel, true)
  local now = lc_now_ms()
  local seq = redis.call('INCR', seq_key)
  local frame = '{"seq":' .. seq .. ',"ts":' .. string.format('%d', now) .. ',' .. string.sub(body, 2)
  redis.call('ZADD', hist_key, seq, string.format('%d', now) .. '|' .. frame)
  local n = redis.call('ZCARD', hist_key)
  if n > max_count then
    redis.call('ZREMRANGEBYRANK', hist_key, 0, n - max_count - 1)
  end
  local cutoff = now - max_age_ms
  while true do
    local oldest = redis.call('ZRANGE', hist_key, 0, 0)
    if #oldest == 0 then break end
    local bar = string.find(oldest[1], '|', 1, true)
    if tonumber(string.sub(oldest[1], 1, bar - 1)) >= cutoff then break end
    redis.call('ZREMRANGEBYRANK', hist_key, 0, 0)
  end
  if state_op == 'set' then
    redis.call('HSET', state_key, state_field, frame)
  elseif state_op == 'del' then
    redis.call('HDEL', state_key, state_field)
  end
  lc_pub(channel, frame)
  return {seq, frame}
end
