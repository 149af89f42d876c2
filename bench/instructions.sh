#!/usr/bin/env bash
# Instructions per `GET /api/users/me/` request, counted by valgrind's callgrind: the
# figure bench/RESULTS.md judges changes by, since it does not move with whatever else
# the machine is doing (this VM has no hardware counters, and wall-clock figures on a
# shared machine move by a tenth between minutes).
#
#   bash bench/instructions.sh [GATEHOUSE_BIN ...]
#
# Each binary (default: this tree's release build) is started under callgrind on a
# fresh SQLite file with the settings bench/run.sh uses, a user is registered and logged
# in, 2 s of `me` warm it up, the counters are zeroed, `wrk -t1 -c4 -d10s` runs `me`, and
# the counters are dumped: instructions of all threads ÷ requests answered. Binaries
# are measured one after another; for a before/after, build the old commit to a copy
# and pass both. GATEHOUSE_ENV adds VAR=value words (e.g. RUST_LOG=warn). Keeps
# callgrind's output in target/callgrind/ for callgrind_annotate.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GATEHOUSE_ENV=${GATEHOUSE_ENV:-}
PORT=${PORT:-18231}
BASE="http://127.0.0.1:$PORT"
OUT="$ROOT/target/callgrind"
if ! command -v wrk >/dev/null || ! command -v callgrind_control >/dev/null; then
  echo "installing wrk and valgrind (Debian packages)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk valgrind >/dev/null
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
if [ $# -eq 0 ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  set -- "$ROOT/target/release/gatehouse"
fi
mkdir -p "$OUT"
WORK=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

post_json() {
  curl -s -X POST -H 'Content-Type: application/json' -d "$2" "$BASE$1"
}

echo "| binary | requests | instructions | per request |"
echo "|---|---:|---:|---:|"
for bin in "$@"; do
  db="$WORK/$(date +%s%N).sqlite3"
  out="$OUT/$(basename "$bin").$$.out"
  env DATABASE_URL="sqlite://$db" GATEHOUSE_BIND="127.0.0.1:$PORT" \
    GATEHOUSE_RATE_LIMIT=off ACCESS_TOKEN_LIFETIME=1h $GATEHOUSE_ENV \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve \
    >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "$BASE/api/users/me/" && break
    sleep 0.1
  done
  post_json /api/register/ '{"username":"benchuser","email":"benchuser@example.com","password":"correct horse battery staple"}' >/dev/null
  access=$(post_json /api/login/ '{"username":"benchuser","password":"correct horse battery staple"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')
  auth="Authorization: Bearer $access"
  wrk -t1 -c4 -d2s -H "$auth" "$BASE/api/users/me/" >/dev/null
  callgrind_control -z "$SERVER" >/dev/null 2>&1
  requests=$(wrk -t1 -c4 -d10s -H "$auth" "$BASE/api/users/me/" |
    awk '/requests in/ { print $1 }')
  callgrind_control -d "$SERVER" >/dev/null 2>&1
  # The dump after the zeroing is the file with the highest part number.
  dump=$(ls -v "$out".* | tail -n 1)
  total=$(awk '/^summary:/ { print $2 }' "$dump")
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  per=$(python3 -c "print(f'{$total / $requests / 1000:.1f}k')")
  echo "| $bin | $requests | $total | $per |"
done
