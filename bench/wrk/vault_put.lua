-- vault_put.lua: PUT /secrets/{name} (vault PUT row), every request a new secret.
-- args: TOKENS_FILE HOST TAG ACKS_DIR NTHREADS
-- Every 200 response's id (".../secrets/NAME/VERSION") is appended to ACKS_DIR/acks.TAG.TID and
-- flushed at once: that file is the list of acknowledged writes the kill -9 check looks for.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local tokens, host, tag, acks
local n = 0
local next_token = 1
local value = string.rep("v", 48)

function init(args)
   local nthreads = tonumber(args[5])
   tokens = slice_lines(args[1], nthreads)
   host = args[2]
   tag = args[3]
   acks = assert(io.open(args[4] .. "/acks." .. tag .. "." .. tid, "a"))
end

function request()
   n = n + 1
   local tok = tokens[next_token]
   next_token = next_token % #tokens + 1
   local name = string.format("%st%dn%d", tag, tid, n)
   return wrk.format("PUT", "/secrets/" .. name .. "?api-version=7.5",
                     {["Host"] = host, ["Authorization"] = "Bearer " .. tok,
                      ["Content-Type"] = "application/json"},
                     '{"value":"' .. value .. '"}')
end

function response(status, headers, body)
   if status == 200 then
      local name, version = string.match(body, '"id":"[^"]*/secrets/([^/"]+)/([0-9a-fA-F]+)"')
      if name then
         acks:write(name, " ", version, "\n")
         acks:flush()
      end
   end
end
