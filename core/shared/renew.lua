-- Renew this instance's leases on the replies it runs.
-- KEYS: the lease set, then each job's hash. ARGV: owner, lease (ms), then each job's id.
-- Returns {lost, stopped}: the ids this instance no longer holds (another took them over), and
-- those a user stopped, whose leases are renewed all the same: this instance is ending them.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local owner, lease, lost, stopped = ARGV[1], tonumber(ARGV[2]), {}, {}
for i = 2, #KEYS do
  local id = ARGV[i + 1]
  local held = redis.call('HMGET', KEYS[i], 'owner', 'stopped')
  if held[1] == owner then
    redis.call('ZADD', KEYS[1], 'XX', now + lease, id)
    if held[2] == '1' then stopped[#stopped + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {lost, stopped}
