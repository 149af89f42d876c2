#!/usr/bin/env bash
# `GET /api/users/me/` from many users in turn: the other end from bench/run.sh's `me`.
#
#   bash bench/many_users.sh [GATEHOUSE_BIN ...]
#
# bench/run.sh's `me` repeats one user's request, which gatehouse on SQLite answers from
# memory while nothing is committed (src/store/wal_index.rs). Here USERS users (3,000)
# send theirs in turn, more than the access check keeps answers for (1,024 per
# connection), so nearly every check reads the database, as in a service whose many
# users each ask now and then while others write.
#
# One SQLite file is prepared once: USERS users inserted by SQL with one password hash,
# each logged in once over HTTP for a real session and access token. Then, ROUNDS (2)
# times, each binary (default: this tree's release build) and the ceiling
# (examples/ceiling.rs) in turn serve a fresh copy of it, and `wrk -t2 -c64` runs
# bench/wrk/me_many.lua for DURATION (10) s. Prints requests/s, p50 and p99 per run,
# and each server's requests/s ÷ the ceiling's from the same round.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
USERS=${USERS:-3000}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
PORT=${PORT:-18241}
BASE="http://127.0.0.1:$PORT"
export SECRET_KEY=bench-only-secret-key-not-for-production-0123456789
export BENCH_WRK=$ROOT/bench/wrk
export WRK_THREADS=2
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
(cd "$ROOT" && cargo build --release --quiet --bin gatehouse --example ceiling)
[ $# -eq 0 ] && set -- "$ROOT/target/release/gatehouse"
CEILING=$ROOT/target/release/examples/ceiling
WORK=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

start() { # $1: a gatehouse binary or "ceiling"; serves $WORK/run.sqlite3
  if [ "$1" = ceiling ]; then
    "$CEILING" "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  else
    env DATABASE_URL="sqlite://$WORK/run.sqlite3" GATEHOUSE_BIND="127.0.0.1:$PORT" \
      GATEHOUSE_RATE_LIMIT=off ACCESS_TOKEN_LIFETIME=1h "$1" serve >"$WORK/server.log" 2>&1 &
  fi
  SERVER=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "$BASE/api/users/me/" && return 0
    sleep 0.1
  done
  echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop() { # SIGTERM: SQLite checkpoints the WAL into the file as the last connection closes
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
}

echo "preparing $USERS users and their tokens" >&2
start "$1"
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
  -d '{"username":"benchuser","email":"benchuser@example.com","password":"correct horse battery staple"}' \
  "$BASE/api/register/"
python3 - "$WORK/run.sqlite3" "$USERS" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute("""
    INSERT INTO auth_user (password, last_login, is_superuser, username, first_name,
                           last_name, email, is_staff, is_active, date_joined)
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
    SELECT password, NULL, 0, 'user' || i, '', '', 'user' || i || '@example.com', 0, 1,
           date_joined
    FROM auth_user, n WHERE username = 'benchuser'""", (int(sys.argv[2]),))
db.commit()
PY
python3 - "$BASE" "$USERS" >"$WORK/tokens" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
base, users = sys.argv[1], int(sys.argv[2])
def login(i):
    body = json.dumps({"username": f"user{i}", "password": "correct horse battery staple"})
    request = urllib.request.Request(base + "/api/login/", body.encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["access"]
with ThreadPoolExecutor(8) as pool:
    for token in pool.map(login, range(1, users + 1)):
        print(token)
PY
stop
# Everything into the main file, so that one copy of it is the whole database.
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$WORK/run.sqlite3"
cp "$WORK/run.sqlite3" "$WORK/prepared.sqlite3"
export TOKENS_FILE=$WORK/tokens

echo "| round | server | requests/s | p50 ms | p99 ms | errors | ÷ ceiling |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  declare -A rps=()
  for server in ceiling "$@"; do
    rm -f "$WORK"/run.sqlite3*
    cp "$WORK/prepared.sqlite3" "$WORK/run.sqlite3"
    start "$server"
    wrk -t2 -c64 -d1s -s "$BENCH_WRK/me_many.lua" "$BASE/api/users/me/" >/dev/null
    line=$(wrk -t2 -c64 -d"${DURATION}s" -s "$BENCH_WRK/me_many.lua" "$BASE/api/users/me/" | grep '^RESULT')
    stop
    field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$line"; }
    rps[$server]=$(field rps)
    ratio=$(python3 -c "print(f'{${rps[$server]} / ${rps[ceiling]}:.2f} ×')")
    echo "| $round | $server | $(field rps) | $(field p50_ms) | $(field p99_ms) | $(field errors) | $ratio |"
  done
done
