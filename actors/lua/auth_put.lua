-- Create, replace or delete one field of an auth hash and publish the change.
-- KEYS[1] the hash   ARGV[1] mode: create | replace | update | delete
-- ARGV[2] field   ARGV[3] value   ARGV[4] channel   ARGV[5] event JSON
-- Returns 1 when applied; -1 when create found the field; -2 when update/delete did not.
local exists = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
local mode = ARGV[1]
if mode == 'create' and exists then return -1 end
if (mode == 'update' or mode == 'delete') and not exists then return -2 end
if mode == 'delete' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
