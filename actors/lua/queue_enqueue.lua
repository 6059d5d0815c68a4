-- Enqueue one job atomically: the Idempotency-Key check, the max_depth check, the job
-- hash and the push on the pending list happen together or not at all.
-- KEYS[1] pending list, KEYS[2] the new job's hash, KEYS[3] idempotency key (the job
--         hash again when the request has none; every key shares the queue's hash tag)
-- ARGV[1] job id, ARGV[2] max_depth, ARGV[3] job hash prefix, ARGV[4] '1' when KEYS[3] is
--         an idempotency key, ARGV[5] its TTL (ms), ARGV[6..] job hash field/value pairs
-- Returns {'new'|'duplicate'|'full', job id, depth of the pending list}
local depth = redis.call('LLEN', KEYS[1])
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing and redis.call('EXISTS', ARGV[3] .. existing) == 1 then
    return {'duplicate', existing, depth}
  end
end
if depth >= tonumber(ARGV[2]) then
  return {'full', '', depth}
end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('LPUSH', KEYS[1], ARGV[1])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[5])
end
return {'new', ARGV[1], depth + 1}
