-- GET /api/users/me/ from many users in turn: bench/many_users.sh writes their access
-- tokens, one a line, to TOKENS_FILE; thread k of WRK_THREADS takes lines k,
-- k + WRK_THREADS, … and sends them round and round, one token per request.
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
  list, turn = {}, 0
  for token in string.gmatch(tokens or "", "[^\n]+") do
    table.insert(list, token)
  end
end

function request()
  turn = turn % #list + 1
  return wrk.format("GET", "/api/users/me/", { ["Authorization"] = "Bearer " .. list[turn] })
end
