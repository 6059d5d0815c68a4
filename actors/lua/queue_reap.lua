-- Return jobs whose lease expired: to the front of the queue, or to the dead-letter list
-- once they used every attempt. Each id is checked again here (still leaseless, still on
-- the processing list), so a job claimed or finished meanwhile is left alone.
-- KEYS[1] pending, KEYS[2] processing, KEYS[3] dead
-- ARGV[1] job hash prefix, ARGV[2] lease key prefix, ARGV[3] max_attempts, ARGV[4] now (ms),
-- ARGV[5..] job ids
-- Returns {requeued, dead}
local requeued, dead = 0, 0
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('EXISTS', ARGV[2] .. id) == 0 and redis.call('LREM', KEYS[2], 0, id) > 0 then
    local job = ARGV[1] .. id
    if redis.call('EXISTS', job) == 1 then
      local attempts = tonumber(redis.call('HGET', job, 'attempts') or '0')
      if attempts >= tonumber(ARGV[3]) then
        redis.call('LPUSH', KEYS[3], id)
        redis.call('HSET', job, 'status', 'dead', 'finished_at', ARGV[4], 'error', 'lease expired')
        dead = dead + 1
      else
        redis.call('RPUSH', KEYS[1], id)
        redis.call('HSET', job, 'status', 'queued')
        requeued = requeued + 1
      end
    end
  end
end
return {requeued, dead}
