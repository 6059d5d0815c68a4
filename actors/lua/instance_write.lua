-- Change one instance of a service atomically with the version bump, log and publish.
-- KEYS[1] version counter   KEYS[2] service hash   KEYS[3] instances hash
-- KEYS[4] event log         KEYS[5] health hash
-- ARGV[1] op: register | deregister | heartbeat | health
-- ARGV[2] service   ARGV[3] instance id   ARGV[4] instance JSON (register) or '1'/'0' (health)
-- ARGV[5] node id   ARGV[6] channel   ARGV[7] log length   ARGV[8] RFC 3339 time
-- Register sets expires_at from the Redis clock when the instance has a ttl_ms.
-- Returns {version, kind}; {0, version} when nothing changed;
-- {-2, 'no service'} / {-3, 'no instance'} when the target is missing.
local op = ARGV[1]
if redis.call('EXISTS', KEYS[2]) == 0 then return {-2, 'no service'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local kind
if op == 'register' then
  local inst = cjson.decode(ARGV[4])
  if (inst.ttl_ms or 0) > 0 then inst.expires_at = now + inst.ttl_ms else inst.expires_at = 0 end
  redis.call('HSET', KEYS[3], ARGV[3], cjson.encode(inst))
  kind = 'instance_registered'
elseif op == 'deregister' then
  if redis.call('HDEL', KEYS[3], ARGV[3]) == 0 then return {-3, 'no instance'} end
  redis.call('HDEL', KEYS[5], ARGV[3])
  kind = 'instance_deregistered'
elseif op == 'heartbeat' then
  local raw = redis.call('HGET', KEYS[3], ARGV[3])
  if not raw then return {-3, 'no instance'} end
  local inst = cjson.decode(raw)
  if (inst.ttl_ms or 0) > 0 then
    inst.expires_at = now + inst.ttl_ms
    redis.call('HSET', KEYS[3], ARGV[3], cjson.encode(inst))
  end
  return {0, tonumber(redis.call('GET', KEYS[1]) or '0')}
elseif op == 'health' then
  local current = redis.call('HGET', KEYS[5], ARGV[3]) or '1'
  if current == ARGV[4] then return {0, tonumber(redis.call('GET', KEYS[1]) or '0')} end
  redis.call('HSET', KEYS[5], ARGV[3], ARGV[4])
  kind = 'instance_health'
else
  return redis.error_reply('unknown op ' .. op)
end
local version = redis.call('INCR', KEYS[1])
local event = cjson.encode({version = version, kind = kind, service = ARGV[2], instance = ARGV[3], node = ARGV[5], at = ARGV[8]})
redis.call('LPUSH', KEYS[4], event)
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[7]) - 1)
redis.call('PUBLISH', ARGV[6], event)
return {version, kind}
