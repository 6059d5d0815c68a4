-- A consistent copy of the whole registry in one round trip.
-- KEYS[1] version counter   KEYS[2] set of service names   KEYS[3] epoch marker
-- then for the i-th name of ARGV: KEYS[3i+1] service hash, KEYS[3i+2] instances hash,
-- KEYS[3i+3] health hash (every key declared, all under one hash tag: Redis Cluster).
-- ARGV: the service names the caller read with SMEMBERS just before.
-- Returns {version or false, {{name, spec, source, instances-flat, health-flat}, ...},
-- epoch or false, stale}; stale = 1 when the set of names changed meanwhile (read again).
local version = redis.call('GET', KEYS[1])
local current = redis.call('SMEMBERS', KEYS[2])
local given = {}
for i = 1, #ARGV do given[ARGV[i]] = true end
local stale = 0
if #current ~= #ARGV then stale = 1 end
for _, name in ipairs(current) do
  if not given[name] then stale = 1 end
end
if stale == 1 then return {version, {}, redis.call('GET', KEYS[3]), 1} end
local out = {}
for i, name in ipairs(ARGV) do
  local base = 3 * i
  local svc = redis.call('HMGET', KEYS[base + 1], 'spec', 'source')
  if svc[1] then
    table.insert(out, {name, svc[1], svc[2] or 'admin',
      redis.call('HGETALL', KEYS[base + 2]), redis.call('HGETALL', KEYS[base + 3])})
  end
end
return {version, out, redis.call('GET', KEYS[3]), 0}
