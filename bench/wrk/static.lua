-- static.lua: a fixed request (method, path and headers from the wrk command line), built once
-- by wrk itself: the agent row and its nginx reference.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
