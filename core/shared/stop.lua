-- Stop replies wherever they run: each job still recorded is marked stopped (renew.lua and
-- claim.lua then never let it run again), and every instance is told at once on the channel.
-- KEYS: each job's hash. ARGV: the pub/sub channel, then each job's id.
-- Returns the ids marked (a job already finished is left alone: its hash is gone).
local marked = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HSET', KEYS[i], 'stopped', 1)
    marked[#marked + 1] = ARGV[i + 1]
  end
end
if #marked > 0 then redis.call('PUBLISH', ARGV[1], cjson.encode(marked)) end
return marked
