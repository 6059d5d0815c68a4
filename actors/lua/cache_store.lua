-- Store cached records with their URL index, release the fill lock, announce the fill.
-- KEYS[1] url set (key hashes of this URL)   KEYS[2] urls zset   KEYS[3] fill lock
-- KEYS[4..] record keys
-- ARGV[1] url id   ARGV[2] index ttl (ms)   ARGV[3] fills channel   ARGV[4] fill notice ('' = none)
-- ARGV[5] now (ms), then per record key: ttl (ms), record bytes, key hash
local n = #KEYS - 3
for i = 1, n do
  local base = 5 + (i - 1) * 3
  redis.call('SET', KEYS[3 + i], ARGV[base + 2], 'PX', ARGV[base + 1])
  redis.call('SADD', KEYS[1], ARGV[base + 3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[5]) - tonumber(ARGV[2]))
redis.call('DEL', KEYS[3])
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return n
