-- Shared body of every script that publishes a room message (prepended at load time).
-- One atomic step: next sequence number, frame = body with "seq" and server "ts" spliced in,
-- append to the bounded history (by count and by age), optional state update, PUBLISH.
local function lc_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function lc_publish(seq_key, hist_key, state_key, channel, body, max_count, max_age_ms,
                          state_op, state_field)
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
  redis.call('PUBLISH', channel, frame)
  return {seq, frame}
end
