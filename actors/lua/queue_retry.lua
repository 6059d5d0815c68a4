-- Admin retry of a dead letter: back on the queue under the same id, attempts reset.
-- KEYS[1] job hash, KEYS[2] pending, KEYS[3] dead
-- ARGV[1] job id
-- Returns {} when the id is not on the dead-letter list, else {consumer, position} of the
-- re-queued job (it joins the back of the line).
if redis.call('LREM', KEYS[3], 0, ARGV[1]) == 0 then return {} end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0)
redis.call('HDEL', KEYS[1], 'result', 'error', 'finished_at')
redis.call('PERSIST', KEYS[1])
local position = redis.call('LPUSH', KEYS[2], ARGV[1])
return {redis.call('HGET', KEYS[1], 'consumer') or '', position}
