-- Read one job for GET /jobs/{id}: its state and, while queued, its place in line.
-- KEYS[1] job hash, KEYS[2] pending list
-- ARGV[1] job id
-- Returns {} when the job does not exist, else
-- {status, attempts, consumer, result JSON or '', position (1 = next; 0 when not queued)}
local h = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'consumer', 'result')
if not h[1] then return {} end
local pos = 0
if h[1] == 'queued' then
  local idx = redis.call('LPOS', KEYS[2], ARGV[1])
  -- Jobs are pushed on the left and taken from the right. A queued job that is not in the
  -- list has been taken by a worker that waits for its start permit: it is next.
  if idx then pos = redis.call('LLEN', KEYS[2]) - idx else pos = 1 end
end
return {h[1], h[2] or '0', h[3] or '', h[4] or '', pos}
