-- Record a node heartbeat with the Redis clock and drop nodes silent for too long.
-- KEYS[1] membership sorted set (score = last seen, ms)
-- ARGV[1] node id   ARGV[2] gone-after (ms)
-- Returns the number of live nodes.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
