-- POST /api/register/ with a new username and email on every request: thread number,
-- then a counter kept by each thread (wrk runs one Lua state per thread).
dofile(os.getenv("BENCH_WRK") .. "/report.lua")

local next_thread = 0
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

local counter = 0
local password = os.getenv("BENCH_PASSWORD")
local headers = { ["Content-Type"] = "application/json" }

function request()
  counter = counter + 1
  local name = string.format("reg%dx%d", thread_id, counter)
  local body = string.format('{"username":"%s","email":"%s@example.com","password":"%s"}',
    name, name, password)
  return wrk.format("POST", "/api/register/", headers, body)
end
