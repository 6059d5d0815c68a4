-- A consistent copy of the whole registry in one round trip.
-- KEYS[1] version counter   KEYS[2] set of service names
-- ARGV[1] service hash key prefix   ARGV[2] instances hash key prefix
-- Returns {version or false, {name, spec, instances-flat-list}...}
local version = redis.call('GET', KEYS[1])
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local spec = redis.call('HGET', ARGV[1] .. name, 'spec')
  if spec then
    table.insert(out, {name, spec, redis.call('HGETALL', ARGV[2] .. name)})
  end
end
return {version, out}
