-- Read the jobs of one list (the dead letters) with their state.
-- KEYS[1] the list
-- ARGV[1] job hash prefix, ARGV[2] most jobs to return
-- Returns a flat array: id, status, attempts, consumer, result JSON or '' per job
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  local h = redis.call('HMGET', ARGV[1] .. id, 'status', 'attempts', 'consumer', 'result')
  if h[1] then
    for _, v in ipairs({id, h[1], h[2] or '0', h[3] or '', h[4] or ''}) do out[#out + 1] = v end
  end
end
return out
