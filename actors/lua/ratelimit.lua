-- Decide requests against every policy that applies to each, atomically and on the
-- Redis clock: per request, first check all its policies, then commit all only if all
-- allow, so a request rejected by one policy consumes from none. Several requests (the
-- decisions one node gathered in one event-loop turn) are decided one after another in
-- the same call, each seeing the counters as the previous ones left them.
-- KEYS     every counter the requests use, each once (a sorted set for sliding_log, a
--          hash otherwise), and the sliding_log sequence hashes (member ids)
-- ARGV[1]  mode: 'decide' (check and commit) or 'peek' (report, change nothing)
-- ARGV[2]  number of requests
-- ARGV[3]  number of policies P; then P times: algorithm, limit, window_ms, burst
-- ARGV[4 + 4P]  the requests, as little-endian unsigned 32-bit numbers: per request n,
--          then per policy the policy's number (1-based), its counter's KEYS index and
--          its sequence hash's KEYS index (the counter's again when it has none)
-- Returns little-endian signed 64-bit integers in one string: per request allowed (1/0),
-- then per policy remaining, reset_ms, retry_ms; with 'peek', remaining is what is left
-- before any request. (Binary both ways: formatting and parsing decimal numbers cost
-- Lua far more than deciding the requests.)
local floor, ceil, max, min, tonumber = math.floor, math.ceil, math.max, math.min, tonumber
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
local peek = ARGV[1] == 'peek'
local requests = tonumber(ARGV[2])
local npol = tonumber(ARGV[3])
local policies = {}
for j = 1, npol do
  local b = 3 + (j - 1) * 4
  local w = tonumber(ARGV[b + 3])
  -- The current window number is the same for every request of the call: once here.
  policies[j] = { ARGV[b + 1], tonumber(ARGV[b + 2]), w, tonumber(ARGV[b + 4]), floor(now / w) }
end
local packed = ARGV[4 + 4 * npol]
local refs = { struct.unpack('<' .. string.rep('I4', #packed / 4), packed) }

-- Hash counters are read at most once per call and written at most once, at the end:
-- `state` holds each counter (field names, then up to three values) as the requests
-- decided so far left it, `ttl` the expiry of each changed one. The script is atomic,
-- so nobody else sees the intermediate values.
local state, ttl, changed = {}, {}, {}
local function load(key, f1, f2, f3)
  local s = state[key]
  if not s then
    local h = redis.call('HMGET', key, f1, f2 or f1, f3 or f1)
    s = { f1, f2, f3, tonumber(h[1]), f2 and tonumber(h[2]), f3 and tonumber(h[3]) }
    state[key] = s
  end
  return s
end

-- A request's pending commits (reused): policy i sets counter ckey[i] to cv1..cv3 with
-- expiry cttl[i]; sliding_log commits go straight to Redis instead.
local ckey, cv1, cv2, cv3, cttl, clog = {}, {}, {}, {}, {}, {}
local out = {}
local a = 1 -- refs cursor: the current request's n
for _ = 1, requests do
  local n = refs[a]
  local verdict = #out + 1
  local allowed = true
  out[verdict] = 1
  for i = 1, n do
    local p = a + (i - 1) * 3
    local pol = policies[refs[p + 1]]
    local alg, limit, w, burst, win = pol[1], pol[2], pol[3], pol[4], pol[5]
    local key = KEYS[refs[p + 2]]
    local ok, remaining, reset, retry
    ckey[i], clog[i] = key, false
    if alg == 'fixed_window' then
      local s = load(key, 'w', 'c')
      local c = 0
      if s[4] == win then c = s[5] or 0 end
      ok = c < limit
      reset = (win + 1) * w - now
      retry = reset
      remaining = limit - c
      cv1[i], cv2[i], cv3[i], cttl[i] = win, c + 1, nil, w * 2
    elseif alg == 'sliding_window' then
      local s = load(key, 'w', 'c', 'p')
      local cur, prev = 0, 0
      if s[4] == win then
        cur, prev = s[5] or 0, s[6] or 0
      elseif s[4] == win - 1 then
        prev = s[5] or 0
      end
      local elapsed = now - win * w
      local est = prev * (w - elapsed) / w + cur
      ok = est + 1 <= limit
      reset = w - elapsed
      remaining = floor(limit - est)
      if cur + 1 > limit then
        retry = reset
      elseif prev > 0 then
        retry = ceil(w * (1 - (limit - 1 - cur) / prev) - elapsed)
      else
        retry = 0
      end
      cv1[i], cv2[i], cv3[i], cttl[i] = win, cur + 1, prev, w * 2
    elseif alg == 'sliding_log' then
      if not peek then redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w) end
      local c = redis.call('ZCOUNT', key, '(' .. (now - w), '+inf')
      ok = c < limit
      remaining = limit - c
      local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - w), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      if oldest[2] then reset = tonumber(oldest[2]) + w - now else reset = w end
      retry = reset
      clog[i], cv1[i], cttl[i] = KEYS[refs[p + 3]], nil, w
    else -- token_bucket and gcra share the bucket view: capacity `cap`, refill limit per w
      local cap = limit
      if burst > 0 then cap = burst end
      local per = w / limit -- ms per token
      if alg == 'token_bucket' then
        local s = load(key, 't', 'ts')
        local tokens, ts = s[4], s[5]
        if not tokens then tokens, ts = cap, now end
        tokens = min(cap, tokens + (now - ts) / per)
        ok = tokens >= 1
        remaining = floor(tokens)
        retry = ceil((1 - tokens) * per)
        reset = ceil((cap - tokens) * per)
        cv1[i], cv2[i], cv3[i], cttl[i] = tokens - 1, now, nil, ceil(cap * per) + 1000
      else -- gcra: theoretical arrival time; up to `cap` requests may arrive at once
        local tat = load(key, 'tat')[4] or now
        if tat < now then tat = now end
        local tau = per * (cap - 1)
        ok = tat - now <= tau
        remaining = floor((tau - (tat - now)) / per) + 1
        retry = ceil(tat - tau - now)
        reset = ceil(tat - now)
        cv1[i], cv2[i], cv3[i], cttl[i] = tat + per, nil, nil, ceil(tat + per - now) + 1000
      end
    end
    if not ok then allowed = false end
    if ok and not peek then remaining = remaining - 1 end
    if remaining < 0 then remaining = 0 end
    if retry < 0 then retry = 0 end
    if reset < 0 then reset = 0 end
    -- Whole numbers without a C call per value (x % 1 is the fraction, floor semantics).
    out[#out + 1] = remaining - remaining % 1
    out[#out + 1] = reset + (-reset) % 1
    if ok then
      out[#out + 1] = 0
    elseif retry < 1 then
      out[#out + 1] = 1
    else
      out[#out + 1] = retry + (-retry) % 1
    end
  end
  if not allowed then
    out[verdict] = 0
  elseif not peek then
    for i = 1, n do
      local key = ckey[i]
      if clog[i] then
        local seq_key = clog[i]
        local seq = redis.call('HINCRBY', seq_key, 'n', 1)
        redis.call('PEXPIRE', seq_key, cttl[i])
        redis.call('ZADD', key, now, now .. '-' .. seq)
        redis.call('PEXPIRE', key, cttl[i])
      else
        local s = state[key]
        s[4], s[5], s[6] = cv1[i], cv2[i], cv3[i]
        if not ttl[key] then changed[#changed + 1] = key end
        ttl[key] = cttl[i]
      end
    end
  end
  a = a + 1 + 3 * n
end
for _, key in ipairs(changed) do
  local s = state[key]
  if s[3] then
    redis.call('HSET', key, s[1], s[4], s[2], s[5], s[3], s[6])
  elseif s[2] then
    redis.call('HSET', key, s[1], s[4], s[2], s[5])
  else
    redis.call('HSET', key, s[1], s[4])
  end
  redis.call('PEXPIRE', key, ttl[key])
end
local chunks = {}
for i = 1, #out, 256 do
  local j = min(i + 255, #out)
  chunks[#chunks + 1] = struct.pack('<' .. string.rep('i8', j - i + 1), unpack(out, i, j))
end
return table.concat(chunks)
