-- Give a held job back to the front of the queue (graceful shutdown). A run that had
-- started (status 'running') was cut short by the shutdown, not by the job: its attempt
-- is taken back, so `attempts` keeps counting runs that ended.
-- KEYS[1] job hash, KEYS[2] lease key, KEYS[3] pending, KEYS[4] processing
-- ARGV[1] lease token, ARGV[2] job id
-- Returns 1 when returned, 0 when the lease was no longer ours.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if redis.call('LREM', KEYS[4], 0, ARGV[2]) > 0 then
  if redis.call('HGET', KEYS[1], 'status') == 'running' and
     tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') > 0 then
    redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  end
  redis.call('RPUSH', KEYS[3], ARGV[2])
  redis.call('HSET', KEYS[1], 'status', 'queued')
end
return 1
