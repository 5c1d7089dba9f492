-- common.lua: loaded first by every wrk script of the benchmark (bench/bench.py).
-- Gives each thread an id (global `tid`, 0-based, set before init) and prints the run's summary
-- as one machine-readable line, "WRKJSON {...}", latencies in microseconds.
local nthreads = 0

function setup(thread)
   thread:set("tid", nthreads)
   nthreads = nthreads + 1
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50.0), latency:percentile(90.0),
      latency:percentile(99.0), latency.max, latency.mean))
end

-- Lines of a file, keeping those with (line number - 1) % n == tid: each thread its own slice.
function slice_lines(path, n)
   local out = {}
   local i = 0
   for line in io.lines(path) do
      if i % n == tid then
         out[#out + 1] = line
      end
      i = i + 1
   end
   assert(#out > 0, "no lines for thread " .. tid .. " in " .. path)
   return out
end
