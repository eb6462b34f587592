-- wrk script for scripts/bench.sh: cycles through pre-signed requests read
-- from a file (one per line: path, timestamp, signature, body, tab-separated),
-- each thread taking every n-th line, and prints the figures as one line:
-- `requests rps p50_us p99_us non2xx socket_errors wrapped`.
local file = os.getenv("BENCH_REQUESTS")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("BENCH_THREADS"))
  requests = {}
  local i = 0
  if file and file ~= "" then
    for line in io.lines(file) do
      if i % nthreads == id then
        local path, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
        local headers = {
          ["Content-Type"] = "application/json",
          ["X-Scorehook-Timestamp"] = ts,
          ["X-Scorehook-Signature"] = sig,
        }
        table.insert(requests, wrk.format("POST", path, headers, body))
      end
      i = i + 1
    end
  end
  total_lines = i
  next_request = 1
end

function request()
  if #requests == 0 then
    return wrk.format("GET", wrk.path)
  end
  local r = requests[next_request]
  next_request = next_request + 1
  if next_request > #requests then
    next_request = 1
  end
  return r
end

function done(summary, latency, requests_)
  local lines = 0
  if file and file ~= "" then
    for _ in io.lines(file) do lines = lines + 1 end
  end
  local wrapped = (lines > 0 and summary.requests > lines) and 1 or 0
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %.1f %d %d %d %d %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), summary.errors.status, errors, wrapped))
end
