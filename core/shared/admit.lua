-- Admit one command, atomically: dedupe, then every rate limit (GCRA), then the claim.
-- KEYS: the claim keys (ARGV[3] of them), then one key per rate limit.
-- ARGV: claim TTL (ms), take (1/0), number of claim keys, then per limit: interval (ms), burst (ms).
-- Returns {outcome, wait_ms}. The time is Redis's own (TIME), so every instance agrees.
local ttl, take, claims = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
for i = 1, claims do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {'duplicate', 0} end
end
if not take then return {'refused', 0} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local wait, next_free = 0, {}
for i = claims + 1, #KEYS do
  local arg = 4 + (i - claims - 1) * 2
  local interval, burst = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
  local free_at = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
  if free_at - now > burst then wait = math.max(wait, free_at - now - burst) end
  next_free[i] = free_at + interval
end
if wait > 0 then return {'rate_limited', wait} end
for i = 1, claims do redis.call('SET', KEYS[i], '1', 'PX', ttl) end
-- A limit key lives as long as it holds information: until its budget is whole again.
for i = claims + 1, #KEYS do redis.call('SET', KEYS[i], next_free[i], 'PX', next_free[i] - now) end
return {'accepted', 0}
