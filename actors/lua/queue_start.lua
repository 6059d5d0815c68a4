-- The worker holds the lease and a start permit: count the run and mark it running, or,
-- when the job already used every attempt, move it to the dead-letter list.
-- KEYS[1] job hash, KEYS[2] lease key, KEYS[3] processing list, KEYS[4] dead list
-- ARGV[1] lease token, ARGV[2] lease (ms), ARGV[3] max_attempts, ARGV[4] job id,
-- ARGV[5] node id, ARGV[6] now (ms)
-- Returns {'run', attempts} | {'dead', attempts} | {'lost', 0}
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'lost', 0} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[3]) then
  redis.call('LREM', KEYS[3], 0, ARGV[4])
  redis.call('LPUSH', KEYS[4], ARGV[4])
  redis.call('HSET', KEYS[1], 'status', 'dead', 'finished_at', ARGV[6])
  redis.call('DEL', KEYS[2])
  return {'dead', attempts}
end
attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'node', ARGV[5], 'started_at', ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {'run', attempts}
