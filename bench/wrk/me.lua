-- GET /api/users/me/ with one user's access token (ACCESS, made by bench/run.sh).
dofile(os.getenv("BENCH_WRK") .. "/report.lua")
wrk.method = "GET"
wrk.path = "/api/users/me/"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ACCESS")
