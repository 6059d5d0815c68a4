-- Decide requests against every policy that applies to each, atomically and on the
-- Redis clock: per request, first check all its policies, then commit all only if all
-- allow, so a request rejected by one policy consumes from none. Several requests (the
-- decisions one node gathered in one event-loop turn) are decided one after another in
-- the same call, each seeing the counters as the previous ones left them.
-- KEYS     per request i with n_i policies: its n_i counters (hash; a sorted set for
--          sliding_log), then its n_i sequence hashes (sliding_log member ids; declared so
--          Redis Cluster sees them; the other algorithms repeat their counter, unused)
-- ARGV[1]  mode: 'decide' (check and commit) or 'peek' (report, change nothing)
-- ARGV[2]  number of requests; then per request: n_i, then per policy: algorithm, limit,
--          window_ms, burst
-- Returns per request: allowed (1/0), then per policy: remaining, reset_ms, retry_ms; with
-- 'peek', remaining is what is left before any request.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local peek = ARGV[1] == 'peek'
local requests = tonumber(ARGV[2])
local out = {}
-- Hash counters are read at most once per call and written at most once, at the end:
-- `state` holds each counter as the requests decided so far left it, `ttl` the expiry of
-- each changed one (the script is atomic, so nobody else sees the intermediate values).
local state, ttl, changed = {}, {}, {}
local function load(key, ...)
  local s = state[key]
  if not s then
    local fields = { ... }
    local h = redis.call('HMGET', key, ...)
    s = {}
    for i, f in ipairs(fields) do s[f] = tonumber(h[i]) end
    state[key] = s
  end
  return s
end
local function store(key, ms, fields)
  local s = state[key]
  for f, v in pairs(fields) do s[f] = v end
  if not ttl[key] then changed[#changed + 1] = key end
  ttl[key] = ms
end
local a = 3 -- ARGV cursor: the current request's n
local k = 0 -- KEYS cursor: before the current request's first counter
for _ = 1, requests do
  local n = tonumber(ARGV[a])
  local verdict = #out + 1
  out[verdict] = 1
  local commits = {}
  for i = 1, n do
    local p = a + (i - 1) * 4
    local alg, limit, w, burst = ARGV[p + 1], tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3]), tonumber(ARGV[p + 4])
    local key = KEYS[k + i]
    local seq_key = KEYS[k + n + i]
    local ok, remaining, reset, retry
    if alg == 'fixed_window' then
      local win = math.floor(now / w)
      local h = load(key, 'w', 'c')
      local c = 0
      if h.w == win then c = h.c or 0 end
      ok = c < limit
      reset = (win + 1) * w - now
      retry = reset
      remaining = limit - c
      commits[i] = function() store(key, w * 2, { w = win, c = c + 1 }) end
    elseif alg == 'sliding_window' then
      local win = math.floor(now / w)
      local h = load(key, 'w', 'c', 'p')
      local cur, prev = 0, 0
      if h.w == win then
        cur, prev = h.c or 0, h.p or 0
      elseif h.w == win - 1 then
        prev = h.c or 0
      end
      local elapsed = now - win * w
      local est = prev * (w - elapsed) / w + cur
      ok = est + 1 <= limit
      reset = w - elapsed
      remaining = math.floor(limit - est)
      if cur + 1 > limit then
        retry = reset
      elseif prev > 0 then
        retry = math.ceil(w * (1 - (limit - 1 - cur) / prev) - elapsed)
      else
        retry = 0
      end
      commits[i] = function() store(key, w * 2, { w = win, c = cur + 1, p = prev }) end
    elseif alg == 'sliding_log' then
      if not peek then redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w) end
      local c = redis.call('ZCOUNT', key, '(' .. (now - w), '+inf')
      ok = c < limit
      remaining = limit - c
      local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - w), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      if oldest[2] then reset = tonumber(oldest[2]) + w - now else reset = w end
      retry = reset
      commits[i] = function()
        local seq = redis.call('HINCRBY', seq_key, 'n', 1)
        redis.call('PEXPIRE', seq_key, w)
        redis.call('ZADD', key, now, now .. '-' .. seq)
        redis.call('PEXPIRE', key, w)
      end
    else -- token_bucket and gcra share the bucket view: capacity `cap`, refill limit per w
      local cap = limit
      if burst > 0 then cap = burst end
      local per = w / limit -- ms per token
      if alg == 'token_bucket' then
        local h = load(key, 't', 'ts')
        local tokens, ts = h.t, h.ts
        if not tokens then tokens, ts = cap, now end
        tokens = math.min(cap, tokens + (now - ts) / per)
        ok = tokens >= 1
        remaining = math.floor(tokens)
        retry = math.ceil((1 - tokens) * per)
        reset = math.ceil((cap - tokens) * per)
        commits[i] = function() store(key, math.ceil(cap * per) + 1000, { t = tokens - 1, ts = now }) end
      else -- gcra: theoretical arrival time; up to `cap` requests may arrive at once
        local tat = load(key, 'tat').tat or now
        if tat < now then tat = now end
        local tau = per * (cap - 1)
        ok = tat - now <= tau
        remaining = math.floor((tau - (tat - now)) / per) + 1
        retry = math.ceil(tat - tau - now)
        reset = math.ceil(tat - now)
        commits[i] = function() store(key, math.ceil(tat + per - now) + 1000, { tat = tat + per }) end
      end
    end
    if not ok then out[verdict] = 0 end
    if ok and not peek then remaining = remaining - 1 end
    if remaining < 0 then remaining = 0 end
    if retry < 0 then retry = 0 end
    if reset < 0 then reset = 0 end
    table.insert(out, remaining)
    table.insert(out, math.ceil(reset))
    table.insert(out, ok and 0 or math.max(1, retry))
  end
  if out[verdict] == 1 and not peek then
    for i = 1, n do commits[i]() end
  end
  a = a + 1 + 4 * n
  k = k + 2 * n
end
for _, key in ipairs(changed) do
  local args = {}
  for f, v in pairs(state[key]) do
    args[#args + 1] = f
    args[#args + 1] = v
  end
  redis.call('HSET', key, unpack(args))
  redis.call('PEXPIRE', key, ttl[key])
end
return out
