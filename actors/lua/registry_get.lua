-- One service and its instances, with the current version.
-- KEYS[1] version counter   KEYS[2] service hash   KEYS[3] instances hash
-- Returns {version, spec or false, instances-flat-list}
return {redis.call('GET', KEYS[1]), redis.call('HGET', KEYS[2], 'spec'), redis.call('HGETALL', KEYS[3])}
