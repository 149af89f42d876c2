-- POST /api/login/ with the right password of one user (BENCH_USER / BENCH_PASSWORD,
-- registered by bench/run.sh). Every request is a full password verification.
dofile(os.getenv("BENCH_WRK") .. "/report.lua")
wrk.method = "POST"
wrk.path = "/api/login/"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"username":"%s","password":"%s"}',
  os.getenv("BENCH_USER"), os.getenv("BENCH_PASSWORD"))
