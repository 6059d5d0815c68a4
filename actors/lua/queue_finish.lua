-- Record the end of a run.
-- KEYS[1] job hash, KEYS[2] lease key, KEYS[3] pending, KEYS[4] processing, KEYS[5] dead
-- ARGV[1] lease token, ARGV[2] job id, ARGV[3] outcome: succeeded | failed | retry | dead,
-- ARGV[4] result JSON ('' for none), ARGV[5] result TTL (ms), ARGV[6] error text,
-- ARGV[7] now (ms)
-- A worker whose lease was lost (it ran longer than its lease without renewing, and the
-- reaper returned the job) still records a final answer, since the run happened; a retry
-- or dead-letter decision then belongs to whoever holds the job now.
-- Returns the outcome applied, 'late' (already final) or 'lost'.
local status = redis.call('HGET', KEYS[1], 'status')
local mine = redis.call('GET', KEYS[2]) == ARGV[1]
if not status then
  redis.call('LREM', KEYS[4], 0, ARGV[2])
  if mine then redis.call('DEL', KEYS[2]) end
  return 'lost'
end
if status == 'succeeded' or status == 'failed' or status == 'dead' then
  if mine then redis.call('DEL', KEYS[2]) end
  return 'late'
end
local outcome = ARGV[3]
if (not mine) and (outcome == 'retry' or outcome == 'dead') then return 'lost' end
redis.call('LREM', KEYS[4], 0, ARGV[2])
redis.call('LREM', KEYS[3], 0, ARGV[2])
redis.call('DEL', KEYS[2])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[6]) end
if outcome == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'queued')
  redis.call('LPUSH', KEYS[3], ARGV[2])
  return 'retry'
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'result', ARGV[4]) end
redis.call('HSET', KEYS[1], 'status', outcome, 'finished_at', ARGV[7])
if outcome == 'dead' then
  redis.call('LPUSH', KEYS[5], ARGV[2])
  return 'dead'
end
redis.call('HDEL', KEYS[1], 'body', 'headers')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local idem = redis.call('HGET', KEYS[1], 'idem')
if idem and idem ~= '' then redis.call('PEXPIRE', idem, ARGV[5]) end
return outcome
