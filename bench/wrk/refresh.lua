-- POST /api/token/refresh/ following rotation: every refresh token is used once, and the
-- new one it answers is used next. bench/run.sh logs in once per connection and writes
-- the refresh tokens, one a line, to TOKENS_FILE; thread k of WRK_THREADS takes lines
-- k, k + WRK_THREADS, … There is one token more per thread than it has connections:
-- wrk may call request() once per thread to check the script without sending what it
-- returns, and the token spent on that must not leave a connection without one.
--
-- wrk has no per-connection hook, so each thread keeps a queue of live tokens: a request
-- takes one, its response gives the next one back. With one request in flight per
-- connection the queue holds one chain per connection. A failed refresh ends its chain
-- (a later request then goes out without a token and counts as an error too).
dofile(os.getenv("BENCH_WRK") .. "/report.lua")

local thread_count = tonumber(os.getenv("WRK_THREADS"))
local dealt = 0
function setup(thread)
  dealt = dealt + 1
  local mine, line_number = {}, 0
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    line_number = line_number + 1
    if (line_number - dealt) % thread_count == 0 then
      table.insert(mine, line)
    end
  end
  thread:set("tokens", table.concat(mine, "\n"))
end

function init(args)
  queue = {}
  for token in string.gmatch(tokens or "", "[^\n]+") do
    table.insert(queue, token)
  end
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  local token = table.remove(queue) or ""
  return wrk.format("POST", "/api/token/refresh/", headers,
    string.format('{"refresh":"%s"}', token))
end

function response(status, response_headers, body)
  local token = string.match(body, '"refresh"%s*:%s*"([^"]+)"')
  if token then
    table.insert(queue, token)
  end
end
