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
      local h = redis.call('HMGET', key, 'w', 'c')
      local c = 0
      if tonumber(h[1]) == win then c = tonumber(h[2]) or 0 end
      ok = c < limit
      reset = (win + 1) * w - now
      retry = reset
      remaining = limit - c
      commits[i] = function()
        redis.call('HSET', key, 'w', win, 'c', c + 1)
        redis.call('PEXPIRE', key, w * 2)
      end
    elseif alg == 'sliding_window' then
      local win = math.floor(now / w)
      local h = redis.call('HMGET', key, 'w', 'c', 'p')
      local hw = tonumber(h[1])
      local cur, prev = 0, 0
      if hw == win then
        cur, prev = tonumber(h[2]) or 0, tonumber(h[3]) or 0
      elseif hw == win - 1 then
        prev = tonumber(h[2]) or 0
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
      commits[i] = function()
        redis.call('HSET', key, 'w', win, 'c', cur + 1, 'p', prev)
        redis.call('PEXPIRE', key, w * 2)
      end
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
        local h = redis.call('HMGET', key, 't', 'ts')
        local tokens, ts = tonumber(h[1]), tonumber(h[2])
        if not tokens then tokens, ts = cap, now end
        tokens = math.min(cap, tokens + (now - ts) / per)
        ok = tokens >= 1
        remaining = math.floor(tokens)
        retry = math.ceil((1 - tokens) * per)
        reset = math.ceil((cap - tokens) * per)
        commits[i] = function()
          redis.call('HSET', key, 't', tokens - 1, 'ts', now)
          redis.call('PEXPIRE', key, math.ceil(cap * per) + 1000)
        end
      else -- gcra: theoretical arrival time; up to `cap` requests may arrive at once
        local tat = tonumber(redis.call('HGET', key, 'tat')) or now
        if tat < now then tat = now end
        local tau = per * (cap - 1)
        ok = tat - now <= tau
        remaining = math.floor((tau - (tat - now)) / per) + 1
        retry = math.ceil(tat - tau - now)
        reset = math.ceil(tat - now)
        commits[i] = function()
          redis.call('HSET', key, 'tat', tat + per)
          redis.call('PEXPIRE', key, math.ceil(tat + per - now) + 1000)
        end
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
return out
