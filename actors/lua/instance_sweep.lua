-- Remove self-registered instances whose lease (heartbeat TTL) ran out, on the Redis clock.
-- KEYS[1] version counter   KEYS[2] set of service names   KEYS[3] event log
-- ARGV[1] instances hash prefix   ARGV[2] health hash prefix   ARGV[3] node id
-- ARGV[4] channel   ARGV[5] log length   ARGV[6] RFC 3339 time
-- Returns the number of instances removed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = 0
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local all = redis.call('HGETALL', ARGV[1] .. name)
  for i = 1, #all, 2 do
    local ok, inst = pcall(cjson.decode, all[i + 1])
    if ok and (inst.expires_at or 0) > 0 and inst.expires_at < now then
      redis.call('HDEL', ARGV[1] .. name, all[i])
      redis.call('HDEL', ARGV[2] .. name, all[i])
      local version = redis.call('INCR', KEYS[1])
      local event = cjson.encode({version = version, kind = 'instance_deregistered', service = name,
        instance = all[i], node = ARGV[3], at = ARGV[6]})
      redis.call('LPUSH', KEYS[3], event)
      redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
      redis.call('PUBLISH', ARGV[4], event)
      removed = removed + 1
    end
  end
end
return removed
