-- Record a revocation and publish it; expired revocations are pruned on the way.
-- KEYS[1] revoked jti zset   KEYS[2] subject cutoffs hash
-- ARGV[1] kind: jti | subject   ARGV[2] jti or subject   ARGV[3] exp or issued_before (unix s)
-- ARGV[4] now (unix s)   ARGV[5] channel   ARGV[6] event JSON
if ARGV[1] == 'jti' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
else
  local current = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
  if tonumber(ARGV[3]) > current then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
