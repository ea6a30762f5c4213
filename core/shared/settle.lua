-- Settle one run of an answer: add the tokens it used to its budgets, release its reservation
-- when the run was the last (final), and count the tokens in the day's usage (`slashbots usage`).
-- KEYS: the reservation's record, the day's usage hash, then this command's budgets as of now
--       (counted in when the record is gone: it lapsed, or Redis lost it).
-- ARGV: reservation id, tokens, final (1/0), usage field prefix ('<command>|<user>|'), prompt,
--       completion, estimated, usage TTL (ms), then per budget of KEYS: its TTL (ms).
local id, tokens, final = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local field = 'r:' .. id

local function release(key)
  local held = redis.call('HGET', key, field)
  if held then
    redis.call('HDEL', key, field)
    redis.call('HINCRBY', key, 'reserved', -tonumber(string.match(held, '^(%d+)')))
  end
end

local record = redis.call('GET', KEYS[1])
if record then
  -- The budgets admission charged, in the period it charged them: an answer that runs past
  -- midnight counts on the day it was asked.
  for key in string.gmatch(record, '[^\n]+') do
    if redis.call('EXISTS', key) == 1 then  -- gone: its period is over, nothing counts there now
      if tokens > 0 then redis.call('HINCRBY', key, 'used', tokens) end
      if final then release(key) end
    end
  end
  if final then redis.call('DEL', KEYS[1]) end
elseif tokens > 0 then
  for i = 3, #KEYS do
    redis.call('HINCRBY', KEYS[i], 'used', tokens)
    if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[6 + i]) end
  end
end
if tokens > 0 then
  local prefix = ARGV[4]
  redis.call('HINCRBY', KEYS[2], prefix .. 'prompt', ARGV[5])
  redis.call('HINCRBY', KEYS[2], prefix .. 'completion', ARGV[6])
  if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', KEYS[2], prefix .. 'estimated', ARGV[7]) end
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
return 1
