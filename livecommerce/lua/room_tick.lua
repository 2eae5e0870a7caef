-- Once per tick per room per node. Reports this node's viewers and likes; the first node to
-- take the tick lock in an interval sums the cluster-wide viewer count (dropping entries of
-- nodes that stopped reporting: no ghost viewers) and publishes viewer_count / likes frames.
-- KEYS: 1 seq, 2 history, 3 state, 4 presence hash, 5 tick lock, 6 pending likes
-- ARGV: 1 channel, 2 max history count, 3 max history age ms, 4 node id, 5 local viewers,
--       6 local likes, 7 presence expiry ms, 8 tick ms
local now = lc_now_ms()
local count = tonumber(ARGV[5])
if count > 0 then
  redis.call('HSET', KEYS[4], ARGV[4], string.format('%d', now + tonumber(ARGV[7])) .. ':' .. count)
else
  redis.call('HDEL', KEYS[4], ARGV[4])
end
local likes_in = tonumber(ARGV[6])
if likes_in > 0 then
  redis.call('INCRBY', KEYS[6], likes_in)
end
if not redis.call('SET', KEYS[5], '1', 'NX', 'PX', tonumber(ARGV[8])) then
  return 0
end
local total = 0
local fields = redis.call('HGETALL', KEYS[4])
for i = 1, #fields, 2 do
  local v = fields[i + 1]
  local colon = string.find(v, ':', 1, true)
  if tonumber(string.sub(v, 1, colon - 1)) < now then
    redis.call('HDEL', KEYS[4], fields[i])
  else
    total = total + tonumber(string.sub(v, colon + 1))
  end
end
local max_count, max_age = tonumber(ARGV[2]), tonumber(ARGV[3])
local published = 0
if tonumber(redis.call('HGET', KEYS[3], 'viewers') or '-1') ~= total then
  redis.call('HSET', KEYS[3], 'viewers', total)
  lc_publish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], '{"type":"viewer_count","count":' .. total .. '}',
             max_count, max_age, '', '')
  published = published + 1
end
local likes = tonumber(redis.call('GETDEL', KEYS[6]) or '0')
if likes > 0 then
  local sum = redis.call('HINCRBY', KEYS[3], 'likes', likes)
  lc_publish(KEYS[1], KEYS[2], KEYS[3], ARGV[1],
             '{"type":"likes","delta":' .. likes .. ',"total":' .. sum .. '}', max_count, max_age, '', '')
  published = published + 1
end
return published
