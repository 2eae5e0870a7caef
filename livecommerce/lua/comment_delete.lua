-- The host deletes a comment: publish {"type":"comment_delete","comment_seq":N} only if the
-- room's frame N is a comment, and only once (docs/api.md, "Console").
-- KEYS: 1 seq, 2 history, 3 state (all share the room's hash tag)
-- ARGV: 1 channel, 2 N, 3 the deletion's body JSON, 4 max history count, 5 max history age ms,
--       6 the epoch N was seen in ('' = any): seqs restart on a new epoch, so another epoch's N
--       may be another comment
-- Returns {outcome, seq, frame, checked}:
--   'not_found'  N is past the room's current seq, or history holds N and it is not a comment,
--                or the room's epoch is not ARGV[6]
--   'repeated'   a deletion of N is still in history: its seq; nothing is published
--   'published'  the deletion's seq and frame
-- checked = 0: N is older than what history keeps (trimmed by count and age), so it could not
-- be checked to be a comment; its deletion is published all the same.
local epoch = lc_epoch(KEYS[1], KEYS[3], ARGV[1], false)
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local target = tonumber(ARGV[2])
if epoch == '' or (ARGV[6] ~= '' and ARGV[6] ~= epoch) or target > current then
  return {'not_found', 0, '', 0}
end

local function frame_of(member)
  local bar = string.find(member, '|', 1, true)
  return string.sub(member, bar + 1)
end

local function type_of(frame)
  local ok, decoded = pcall(cjson.decode, frame)
  if ok and type(decoded) == 'table' then
    return decoded['type'], decoded
  end
  return nil, nil
end

local checked = 0
local at = redis.call('ZRANGEBYSCORE', KEYS[2], target, target, 'LIMIT', 0, 1)
if #at > 0 then
  if type_of(frame_of(at[1])) ~= 'comment' then
    return {'not_found', 0, '', 0}
  end
  checked = 1
end

-- A deletion of N comes after N: if one was published and N is still in history, so is it.
-- Its frame ends with the body's fields, as lc_publish splices them.
local body = ARGV[3]
local tail = ',' .. string.sub(body, 2)
local later = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. target, '+inf')
for i = 1, #later do
  local member = later[i]
  if string.sub(member, -#tail) == tail then
    local kind, decoded = type_of(frame_of(member))
    if kind == 'comment_delete' and decoded['comment_seq'] == target then
      return {'repeated', decoded['seq'], '', checked}
    end
  end
end

local res = lc_publish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], body, tonumber(ARGV[4]),
                       tonumber(ARGV[5]), '', '')
return {'published', res[1], res[2], checked}
