-- A consistent copy of the whole registry in one round trip.
-- KEYS[1] version counter   KEYS[2] set of service names   KEYS[3] epoch marker
-- ARGV[1] service hash key prefix   ARGV[2] instances hash key prefix   ARGV[3] health hash key prefix
-- Returns {version or false, {{name, spec, source, instances-flat, health-flat}, ...}, epoch or false}
local version = redis.call('GET', KEYS[1])
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local svc = redis.call('HMGET', ARGV[1] .. name, 'spec', 'source')
  if svc[1] then
    table.insert(out, {name, svc[1], svc[2] or 'admin',
      redis.call('HGETALL', ARGV[2] .. name), redis.call('HGETALL', ARGV[3] .. name)})
  end
end
return {version, out, redis.call('GET', KEYS[3])}
