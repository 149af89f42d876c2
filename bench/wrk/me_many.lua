-- GET /api/users/me/ from many users in turn: bench/many_users.sh writes their access
-- tokens, one a line, to TOKENS_FILE; each thread sends those tokens.lua deals it round
-- and round, one token per request.
dofile(os.getenv("BENCH_WRK") .. "/report.lua")
dofile(os.getenv("BENCH_WRK") .. "/tokens.lua")

function init(args)
  list, turn = dealt_tokens(), 0
end

function request()
  turn = turn % #list + 1
  return wrk.format("GET", "/api/users/me/", { ["Authorization"] = "Bearer " .. list[turn] })
end
