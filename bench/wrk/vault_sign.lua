-- vault_sign.lua: POST /keys/{name}//sign (the keys row, bench/keys.py): one digest signed per
-- request with the latest version of the key (empty version segment).
-- args: TOKENS_FILE HOST KEY ALG DIGEST_B64URL NTHREADS
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local tokens, host, path, body
local next_token = 1

function init(args)
   tokens = slice_lines(args[1], tonumber(args[6]))
   for i, t in ipairs(tokens) do
      tokens[i] = "Bearer " .. t
   end
   host = args[2]
   path = "/keys/" .. args[3] .. "//sign?api-version=7.5"
   body = '{"alg":"' .. args[4] .. '","value":"' .. args[5] .. '"}'
end

function request()
   local tok = tokens[next_token]
   next_token = next_token % #tokens + 1
   return wrk.format("POST", path, {["Host"] = host, ["Authorization"] = tok,
                                    ["Content-Type"] = "application/json"}, body)
end
