-- Admit one command, atomically: dedupe, then every token budget, then every rate limit (GCRA),
-- then the claim, the reservation on the budgets, and (for durable replies) the job, recorded
-- before the ack returns, leased to this instance.
-- KEYS: the claim keys, one key per rate limit, one per budget, then (with budgets) the
--       reservation's record, then (with a job) its hash and the lease set.
-- ARGV: claim TTL (ms), take (1/0), number of claims, of limits, of budgets; then per limit:
--       interval (ms), burst (ms); per budget: its limit (tokens), its key's TTL (ms); then, with
--       budgets: the reservation's id, tokens and lapse (ms); then, with a job: its id, payload,
--       owner, lease (ms), job TTL (ms).
-- Returns {outcome, wait_ms, the positions of the budgets with no room left...}, a position negative
-- when only the answers running fill it (their reservations). The time is Redis's own (TIME), so
-- every instance agrees.
local ttl, take = tonumber(ARGV[1]), ARGV[2] == '1'
local claims, limits, budgets = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 1, claims do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {'duplicate', 0} end
end
if not take then return {'refused', 0} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local limit_arg, budget_arg = 6, 6 + limits * 2
local first_budget = claims + limits

-- A budget is a hash: 'used' (settled tokens), 'reserved' (held for the answers running), 'lapses'
-- (when the earliest reservation lapses) and a field 'r:<id>' = '<tokens>:<lapses at>' per reservation.
-- A reservation lapses when nobody settles it (its instance died, and no other finished the answer);
-- the fields are summed again only then, so the ack reads two fields, not one per running answer.
local function reserved(key)
  local lapses = tonumber(redis.call('HGET', key, 'lapses') or '0')
  if lapses == 0 or now < lapses then return tonumber(redis.call('HGET', key, 'reserved') or '0') end
  local fields, total, earliest = redis.call('HGETALL', key), 0, 0
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'r:' then
      local tokens, at = string.match(fields[i + 1], '^(%d+):(%d+)$')
      tokens, at = tonumber(tokens), tonumber(at)
      if at <= now then
        redis.call('HDEL', key, fields[i])
      else
        total = total + tokens
        if earliest == 0 or at < earliest then earliest = at end
      end
    end
  end
  redis.call('HSET', key, 'reserved', total, 'lapses', earliest)
  return total
end

local spent = {}
for b = 1, budgets do
  local key = KEYS[first_budget + b]
  local used, limit = tonumber(redis.call('HGET', key, 'used') or '0'), tonumber(ARGV[budget_arg + (b - 1) * 2])
  if used >= limit then
    spent[#spent + 1] = b
  elseif used + reserved(key) >= limit then
    spent[#spent + 1] = -b
  end
end
if #spent > 0 then return {'over_budget', 0, unpack(spent)} end

local wait, next_free = 0, {}
for i = claims + 1, claims + limits do
  local arg = limit_arg + (i - claims - 1) * 2
  local interval, burst = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
  local free_at = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
  if free_at - now > burst then wait = math.max(wait, free_at - now - burst) end
  next_free[i] = free_at + interval
end
if wait > 0 then return {'rate_limited', wait} end
for i = 1, claims do redis.call('SET', KEYS[i], '1', 'PX', ttl) end
-- A limit key lives as long as it holds information: until its budget is whole again.
for i = claims + 1, claims + limits do redis.call('SET', KEYS[i], next_free[i], 'PX', next_free[i] - now) end

local key_at, arg = first_budget + budgets + 1, budget_arg + budgets * 2
if budgets > 0 then
  local id, tokens, lapse = ARGV[arg], tonumber(ARGV[arg + 1]), tonumber(ARGV[arg + 2])
  local field, at, names = 'r:' .. id, now + lapse, {}
  for b = 1, budgets do
    local key = KEYS[first_budget + b]
    if redis.call('HSETNX', key, field, tokens .. ':' .. at) == 1 then
      redis.call('HINCRBY', key, 'reserved', tokens)
      local lapses = tonumber(redis.call('HGET', key, 'lapses') or '0')
      if lapses == 0 or at < lapses then redis.call('HSET', key, 'lapses', at) end
    end
    redis.call('PEXPIRE', key, ARGV[budget_arg + (b - 1) * 2 + 1])
    names[b] = key
  end
  -- Which budgets to settle, for whichever instance ends the answer (settle.lua).
  redis.call('SET', KEYS[key_at], table.concat(names, '\n'), 'PX', lapse)
  key_at, arg = key_at + 1, arg + 3
end
if #KEYS >= key_at then
  local job, leases = KEYS[key_at], KEYS[key_at + 1]
  local id, payload, owner = ARGV[arg], ARGV[arg + 1], ARGV[arg + 2]
  local lease, job_ttl = tonumber(ARGV[arg + 3]), tonumber(ARGV[arg + 4])
  redis.call('HSET', job, 'payload', payload, 'owner', owner, 'attempt', 1, 'messages', 0, 'stopped', 0)
  redis.call('PEXPIRE', job, job_ttl)
  redis.call('ZADD', leases, now + lease, id)
end
return {'accepted', 0}
