-- POST /api/token/refresh/ following rotation: every refresh token is used once, and the
-- new one it answers is used next. bench/run.sh logs in once per connection and writes
-- the refresh tokens, one a line, to TOKENS_FILE, dealt out to the threads by
-- tokens.lua. There is one token more per thread than it has connections:
-- wrk may call request() once per thread to check the script without sending what it
-- returns, and the token spent on that must not leave a connection without one.
--
-- wrk has no per-connection hook, so each thread keeps a queue of live tokens: a request
-- takes one, its response gives the next one back. With one request in flight per
-- connection the queue holds one chain per connection. A failed refresh ends its chain
-- (a later request then goes out without a token and counts as an error too).
dofile(os.getenv("BENCH_WRK") .. "/report.lua")
dofile(os.getenv("BENCH_WRK") .. "/tokens.lua")

function init(args)
  queue = dealt_tokens()
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
