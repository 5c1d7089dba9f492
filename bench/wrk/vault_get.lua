-- vault_get.lua: GET /secrets/{name}/ with a bearer token (vault GET and scale rows, and their
-- nginx reference, which ignores the headers but costs wrk the same work).
-- args: TOKENS_FILE HOST NSECRETS PREFIX NTHREADS
-- Tokens: the file's lines are split between threads; each thread hands its tokens out round
-- robin, one per request. With as many tokens as connections, each in-flight request carries a
-- different token (wrk has no per-connection hook; see docs/benchmarks.md).
-- Names: PREFIX .. 7-digit index, uniformly random in [0, NSECRETS).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local tokens, host, nsecrets, prefix
local next_token = 1

function init(args)
   local n = tonumber(args[5])
   tokens = slice_lines(args[1], n)
   for i, t in ipairs(tokens) do
      tokens[i] = "Bearer " .. t
   end
   host = args[2]
   nsecrets = tonumber(args[3])
   prefix = args[4]
   math.randomseed(os.time() + 7919 * tid)
end

function request()
   local tok = tokens[next_token]
   next_token = next_token % #tokens + 1
   local name = string.format("%s%07d", prefix, math.random(0, nsecrets - 1))
   return wrk.format("GET", "/secrets/" .. name .. "/?api-version=7.5",
                     {["Host"] = host, ["Authorization"] = tok})
end
