-- wrk script for benchmarks/overload.py: cycles through pre-signed webhook bodies, each with its own
-- message id, so no request is a replay. The file (the first script argument) has one request a line:
-- "<signature> <body>". Arguments: that file, wrk's thread count, the API key.
-- Thread n of N takes lines n, n+N, ...; done() prints one JSON line.

local counter = 0

function setup(thread)  -- runs in the main Lua state, once per thread, before init
  counter = counter + 1
  thread:set("index", counter)
end

function init(args)  -- runs in each thread's own Lua state
  local count = tonumber(args[2])
  local line_number, requests = 0, {}
  for line in io.lines(args[1]) do
    if line_number % count == index - 1 then
      local signature, body = line:match("^(%x+) (.*)$")
      requests[#requests + 1] = wrk.format("POST", "/webhook", {
        ["Content-Type"] = "application/json", ["X-Signature"] = signature, ["X-Api-Key"] = args[3],
      }, body)
    end
    line_number = line_number + 1
  end
  bodies, next_body = requests, 0
end

function request()
  next_body = next_body % #bodies + 1
  return bodies[next_body]
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status))
end
