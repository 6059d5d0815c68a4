-- Remove self-registered instances whose lease (heartbeat TTL) ran out, on the Redis clock.
-- KEYS[1] version counter   KEYS[2] set of service names   KEYS[3] event log
-- then for the i-th name of ARGV[5..]: KEYS[2i+2] instances hash, KEYS[2i+3] health hash
-- (every key declared, all under one hash tag: Redis Cluster). Names no longer in the set
-- are skipped; a service created meanwhile is swept next round.
-- ARGV[1] node id   ARGV[2] channel   ARGV[3] log length   ARGV[4] RFC 3339 time
-- ARGV[5..] service names
-- Returns the number of instances removed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = 0
for i = 5, #ARGV do
  local name = ARGV[i]
  local instances, health = KEYS[2 * (i - 4) + 2], KEYS[2 * (i - 4) + 3]
  if redis.call('SISMEMBER', KEYS[2], name) == 1 then
    local all = redis.call('HGETALL', instances)
    for j = 1, #all, 2 do
      local ok, inst = pcall(cjson.decode, all[j + 1])
      if ok and (inst.expires_at or 0) > 0 and inst.expires_at < now then
        redis.call('HDEL', instances, all[j])
        redis.call('HDEL', health, all[j])
        local version = redis.call('INCR', KEYS[1])
        local event = cjson.encode({version = version, kind = 'instance_deregistered', service = name,
          instance = all[j], node = ARGV[1], at = ARGV[4]})
        redis.call('LPUSH', KEYS[3], event)
        redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
        redis.call('PUBLISH', ARGV[2], event)
        removed = removed + 1
      end
    end
  end
end
return removed
