-- Atomically change one service, bump the registry version, log and publish the event.
-- KEYS[1] version counter   KEYS[2] set of service names
-- KEYS[3] the service hash  KEYS[4] event log (capped list)
-- KEYS[5] the service's instances hash   KEYS[6] the service's health hash
-- ARGV[1] op: create | upsert | delete     ARGV[2] service name
-- ARGV[3] spec JSON (create/upsert)        ARGV[4] source: config | admin
-- ARGV[5] node id   ARGV[6] channel   ARGV[7] log length   ARGV[8] RFC 3339 time
-- Returns {version, kind}; {0, version} when an upsert changed nothing;
-- {-1, 'exists'} / {-2, 'missing'} when a create/delete does not apply.
local exists = redis.call('EXISTS', KEYS[3]) == 1
local op = ARGV[1]
local kind
if op == 'delete' then
  if not exists then return {-2, 'missing'} end
  redis.call('DEL', KEYS[3], KEYS[5], KEYS[6])
  redis.call('SREM', KEYS[2], ARGV[2])
  kind = 'service_deleted'
else
  if op == 'create' and exists then return {-1, 'exists'} end
  if exists and redis.call('HGET', KEYS[3], 'spec') == ARGV[3] then
    return {0, tonumber(redis.call('GET', KEYS[1]) or '0')}
  end
  redis.call('HSET', KEYS[3], 'spec', ARGV[3], 'source', ARGV[4], 'updated_at', ARGV[8])
  redis.call('SADD', KEYS[2], ARGV[2])
  if exists then kind = 'service_updated' else kind = 'service_created' end
end
local version = redis.call('INCR', KEYS[1])
local event = cjson.encode({version = version, kind = kind, service = ARGV[2], node = ARGV[5], at = ARGV[8]})
redis.call('LPUSH', KEYS[4], event)
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[7]) - 1)
redis.call('PUBLISH', ARGV[6], event)
return {version, kind}
