-- The ids on the processing list whose lease key is missing (expired or never set).
-- KEYS[1] processing list; ARGV[1] lease key prefix
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then out[#out + 1] = id end
end
return out
