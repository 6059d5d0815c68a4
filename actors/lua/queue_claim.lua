-- A worker moved a job id to the processing list (BLMOVE): take the lease and read the
-- request. The lease key expires unless renewed; the reaper returns leaseless jobs.
-- KEYS[1] job hash, KEYS[2] lease key, KEYS[3] processing list
-- ARGV[1] lease token, ARGV[2] lease (ms), ARGV[3] job id
-- Returns {} when there is nothing to run (the job is gone or already finished), else
-- the request fields in the order the caller asks for below.
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or status == 'succeeded' or status == 'failed' or status == 'dead' then
  redis.call('LREM', KEYS[3], 0, ARGV[3])
  return {}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('HMGET', KEYS[1], 'consumer', 'method', 'path', 'query', 'headers', 'body',
  'request_id', 'attempts')
