-- Claim replies whose lease has lapsed (their instance died, or handed them back).
-- KEYS[1]: the lease set. ARGV: owner, lease (ms), how many at most, the job hashes' key prefix.
-- Returns, per job: id, payload, attempt, messages posted so far, stopped (1/0).
-- The job hashes' keys are built here from their ids: fine on one Redis, not on a cluster.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local owner, lease, most, prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, most)) do
  local job = prefix .. id
  if redis.call('EXISTS', job) == 0 then
    redis.call('ZREM', KEYS[1], id)  -- expired whole: nothing left to run
  else
    redis.call('HSET', job, 'owner', owner)
    local attempt = redis.call('HINCRBY', job, 'attempt', 1)
    redis.call('ZADD', KEYS[1], now + lease, id)
    local fields = redis.call('HMGET', job, 'payload', 'messages', 'stopped')
    claimed[#claimed + 1] = {id, fields[1], attempt, tonumber(fields[2] or 0), fields[3] == '1' and 1 or 0}
  end
end
return claimed
