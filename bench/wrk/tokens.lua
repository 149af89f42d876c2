-- Shared by the scenarios that send tokens made beforehand: TOKENS_FILE holds them, one a
-- line; thread k of WRK_THREADS takes lines k, k + WRK_THREADS, … `setup` deals them
-- out (wrk calls it once per thread, before the thread starts), and in the thread
-- `dealt_tokens()` gives them back as a list.
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

function dealt_tokens()
  local list = {}
  for token in string.gmatch(tokens or "", "[^\n]+") do
    table.insert(list, token)
  end
  return list
end
