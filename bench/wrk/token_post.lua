-- token_post.lua: POST a client_credentials request with a private_key_jwt client assertion
-- (authority row; the same script drives mivault and oidc-provider).
-- args: BODIES_FILE PATH HOST NTHREADS
-- BODIES_FILE holds one urlencoded form per line, each with a distinct assertion (its own jti);
-- threads take disjoint slices and send each body once. Running out of bodies would replay
-- assertions (mivault accepts that, oidc-provider refuses it): wrk then prints a warning and the
-- replays show as non-2xx responses in the summary.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local bodies, path, host
local i = 0
local warned = false

function init(args)
   bodies = slice_lines(args[1], tonumber(args[4]))
   path = args[2]
   host = args[3]
end

function request()
   i = i + 1
   if i > #bodies then
      i = 1
      if not warned then
         io.stderr:write("token_post.lua: thread " .. tid .. " ran out of assertions\n")
         warned = true
      end
   end
   return wrk.format("POST", path, {["Host"] = host,
                     ["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[i])
end
