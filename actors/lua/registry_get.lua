-- One service, its instances and their health, with the current version.
-- KEYS[1] version counter   KEYS[2] service hash   KEYS[3] instances hash   KEYS[4] health hash
-- Returns {version, spec or false, source, instances-flat, health-flat}
local svc = redis.call('HMGET', KEYS[2], 'spec', 'source')
return {redis.call('GET', KEYS[1]), svc[1], svc[2] or 'admin', redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
