-- Hand replies back (shutting down): their leases lapse now, so another instance claims them at once.
-- KEYS: the lease set, then each job's hash. ARGV: owner, then each job's id.
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'owner') == ARGV[1] then
    redis.call('HSET', KEYS[i], 'owner', '')
    redis.call('ZADD', KEYS[1], 0, ARGV[i])
  end
end
return 0
