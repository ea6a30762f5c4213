-- A reply's final text has landed: forget the job, if it is still this instance's.
-- KEYS: the job's hash, the lease set. ARGV: owner, the job's id. Returns 1 if it was ours.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
