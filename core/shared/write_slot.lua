-- Reserve Stream message updates for the whole app (core/capacity.py's Pacer, in Redis).
-- KEYS[1]: the app's pacing key. ARGV: interval (ms), burst (ms), urgent (1/0), count, max backlog (ms).
-- Returns the milliseconds to wait before sending (0 when urgent).
local interval, burst, urgent = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local count, backlog = tonumber(ARGV[4]), tonumber(ARGV[5])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local wait = 0
if not urgent then wait = math.max(tat - burst - now, 0) end
local next_tat = math.min(tat + count * interval, now + backlog)
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now + 1000)
return wait
