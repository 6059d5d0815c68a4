-- Everything the auth guard checks, in one consistent read.
-- KEYS[1] consumers hash   KEYS[2] api keys hash   KEYS[3] revoked jti zset   KEYS[4] subject cutoffs hash
-- ARGV[1] now (unix seconds): revocations that expired are not returned.
-- Returns {consumers-flat, keys-flat, revoked {jti, exp, ...}, cutoffs-flat}
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[2]),
  redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[1], '+inf', 'WITHSCORES'),
  redis.call('HGETALL', KEYS[4]),
}
