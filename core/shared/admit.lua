-- Admit one command, atomically: dedupe, then every rate limit (GCRA), then the claim, and
-- (for durable replies) the job, recorded before the ack returns, leased to this instance.
-- KEYS: the claim keys, then one key per rate limit, then (with a job) its hash and the lease set.
-- ARGV: claim TTL (ms), take (1/0), number of claims, number of limits, then per limit: interval
--       (ms), burst (ms); then, with a job: its id, payload, owner, lease (ms), job TTL (ms).
-- Returns {outcome, wait_ms}. The time is Redis's own (TIME), so every instance agrees.
local ttl, take = tonumber(ARGV[1]), ARGV[2] == '1'
local claims, limits = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, claims do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {'duplicate', 0} end
end
if not take then return {'refused', 0} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local wait, next_free = 0, {}
for i = claims + 1, claims + limits do
  local arg = 5 + (i - claims - 1) * 2
  local interval, burst = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
  local free_at = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
  if free_at - now > burst then wait = math.max(wait, free_at - now - burst) end
  next_free[i] = free_at + interval
end
if wait > 0 then return {'rate_limited', wait} end
for i = 1, claims do redis.call('SET', KEYS[i], '1', 'PX', ttl) end
-- A limit key lives as long as it holds information: until its budget is whole again.
for i = claims + 1, claims + limits do redis.call('SET', KEYS[i], next_free[i], 'PX', next_free[i] - now) end
if #KEYS > claims + limits then
  local job, leases = KEYS[claims + limits + 1], KEYS[claims + limits + 2]
  local arg = 5 + limits * 2
  local id, payload, owner = ARGV[arg], ARGV[arg + 1], ARGV[arg + 2]
  local lease, job_ttl = tonumber(ARGV[arg + 3]), tonumber(ARGV[arg + 4])
  redis.call('HSET', job, 'payload', payload, 'owner', owner, 'attempt', 1, 'messages', 0, 'stopped', 0)
  redis.call('PEXPIRE', job, job_ttl)
  redis.call('ZADD', leases, now + lease, id)
end
return {'accepted', 0}
