-- One breaker's cluster-wide state: trip, probe, probe result, reset. Mirrors
-- domain/src/circuit/machine.rs (the memory backend); change both together.
-- KEYS[1] breakers hash (field "<service>/<instance>" -> JSON)
-- ARGV[1] op: trip | probe | probe_ok | probe_fail | probe_release | reset
-- ARGV[2] field   ARGV[3] open_for (ms)   ARGV[4] half-open probes
-- ARGV[5] channel ARGV[6] node   ARGV[7] service   ARGV[8] instance   ARGV[9] at (RFC 3339)
-- Returns {granted (0/1), state JSON}. Times come from Redis TIME (ms).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local open_for = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local b = {state = 'closed', until_ms = 0, opened_ms = 0, since_ms = 0, probes = 0, ok = 0}
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if raw then
  for k, v in pairs(cjson.decode(raw)) do b[k] = v end
end
local changed = false
local granted = 0
local function open()
  b.state = 'open'; b.until_ms = now + open_for; b.opened_ms = now; b.probes = 0; b.ok = 0
  changed = true
end
if op == 'trip' then
  if b.state == 'closed' then open() end
elseif op == 'probe' then
  if b.state == 'open' and now >= b.until_ms then
    b.state = 'half_open'; b.since_ms = now; b.probes = 0; b.ok = 0
    changed = true
  end
  -- A round whose probes never reported (their node died): start it over.
  if b.state == 'half_open' and b.probes >= limit and now >= b.since_ms + open_for then
    b.since_ms = now; b.probes = 0; b.ok = 0
  end
  if b.state == 'half_open' and b.probes < limit then
    b.probes = b.probes + 1
    granted = 1
  end
elseif op == 'probe_ok' then
  if b.state == 'half_open' then
    b.ok = b.ok + 1
    if b.ok >= limit then
      b.state = 'closed'; b.until_ms = 0; b.probes = 0; b.ok = 0
      changed = true
    end
  end
elseif op == 'probe_fail' then
  if b.state == 'half_open' then open() end
elseif op == 'probe_release' then
  -- The probe's client failed it: nothing learnt, the slot goes back.
  if b.state == 'half_open' and b.probes > 0 then b.probes = b.probes - 1 end
elseif op == 'reset' then
  if b.state ~= 'closed' then changed = true end
  b = {state = 'closed', until_ms = 0, opened_ms = 0, since_ms = 0, probes = 0, ok = 0}
end
local encoded = cjson.encode(b)
redis.call('HSET', KEYS[1], ARGV[2], encoded)
if changed then
  redis.call('PUBLISH', ARGV[5], cjson.encode({
    kind = 'circuit', service = ARGV[7], instance = ARGV[8], state = b.state,
    until_ms = b.until_ms, opened_ms = b.opened_ms, node = ARGV[6], at = ARGV[9]
  }))
end
return {granted, encoded}
