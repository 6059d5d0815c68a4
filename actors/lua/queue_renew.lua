-- Extend a lease, only for its holder.
-- KEYS[1] lease key; ARGV[1] token, ARGV[2] lease (ms)
-- Returns 1 when renewed, 0 when the lease is no longer ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
