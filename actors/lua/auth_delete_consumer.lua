-- Delete a consumer and every API key it owns, then publish the change.
-- KEYS[1] consumers hash   KEYS[2] api keys hash
-- ARGV[1] consumer id   ARGV[2] channel   ARGV[3] event JSON
-- Returns 1 when the consumer existed, else 0.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local ok, rec = pcall(cjson.decode, all[i + 1])
  if ok and rec.consumer == ARGV[1] then redis.call('HDEL', KEYS[2], all[i]) end
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
