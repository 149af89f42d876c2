#!/usr/bin/env bash
# Listing users at scale (issue: user administration): seeds N users (default 1,000,000)
# into a fresh SQLite file and a fresh PostgreSQL database, starts a release build of
# gatehouse on each, and times GET /api/users/ — the first page, pages deep in the list,
# searches, an ordering and a filter — as a staff user would call them.
#
#   bash bench/users_at_scale.sh              # both databases
#   BACKENDS=sqlite N=100000 bash bench/users_at_scale.sh
#
# Needs python3 (SQLite seeding), curl, and for PostgreSQL psql and a server at
# PG_SERVER (default postgres://postgres:postgres@127.0.0.1:5432). Prints a Markdown
# table; each figure is the median and the 90th percentile of REPEAT requests, in ms.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
REPEAT=${REPEAT:-21}
BACKENDS=${BACKENDS:-sqlite postgres}
PG_SERVER=${PG_SERVER:-postgres://postgres:postgres@127.0.0.1:5432}
PORT=${PORT:-18080}
ADMIN_PASSWORD='bench-Admin-passw0rd'

cargo build --release --quiet
BIN=$PWD/target/release/gatehouse
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

seed_sqlite() { # $1: database file
  python3 - "$1" "$N" <<'PY'
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=OFF")
c.execute("""WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email,
                       is_staff, is_active, date_joined, first_name)
SELECT '!unusable', NULL, 0, 'user' || i, 'Last' || (i % 1000), 'user' || i || '@example' || (i % 100) || '.com',
       i % 50 = 0, i % 10 <> 0, strftime('%Y-%m-%d %H:%M:%f000', '2020-01-01', '+' || (i * 7 % 999983) || ' minutes'),
       'First' || (i % 997)
FROM seq""", (n,))
c.commit(); c.execute("ANALYZE"); c.close()
PY
}

seed_postgres() { # $1: database URL
  psql "$1" -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email,
                       is_staff, is_active, date_joined, first_name)
SELECT '!unusable', NULL, FALSE, 'user' || i, 'Last' || (i % 1000), 'user' || i || '@example' || (i % 100) || '.com',
       i % 50 = 0, i % 10 <> 0, timestamptz '2020-01-01 00:00:00+00' + ((i * 7 % 999983) || ' minutes')::interval,
       'First' || (i % 997)
FROM generate_series(1, $N) AS i;
VACUUM ANALYZE auth_user;
SQL
}

# Prints "median p90" in milliseconds for REPEAT authenticated GETs of $1.
time_get() {
  for _ in $(seq "$REPEAT"); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $ACCESS" "http://127.0.0.1:$PORT$1"
  done | sort -n | awk '{ t[NR] = $1 * 1000 } END { printf "%.1f %.1f", t[int((NR + 1) / 2)], t[int(NR * 0.9 + 0.5)] }'
}

declare -A RESULT
QUERIES=(
  "/api/users/"
  "/api/users/?page=2"
  "/api/users/?page=$((N / 40))"
  "/api/users/?page=$((N / 20))"
  "/api/users/?ordering=-date_joined&page=$((N / 40))"
  "/api/users/?ordering=email&page=$((N / 40))"
  "/api/users/?search=user4242"
  "/api/users/?search=USER31337@EXAMPLE37"
  "/api/users/?search=example42.com"
  "/api/users/?is_staff=true&ordering=-username"
)

for backend in $BACKENDS; do
  if [ "$backend" = sqlite ]; then
    url="sqlite://$WORK/bench.sqlite3"
  else
    name="gh_bench_$$"
    psql "$PG_SERVER/postgres" -qc "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
    url="$PG_SERVER/$name"
  fi
  export DATABASE_URL=$url SECRET_KEY=bench-secret-key ACCESS_TOKEN_LIFETIME=1h RUST_LOG=warn GATEHOUSE_RATE_LIMIT=off
  "$BIN" migrate >/dev/null
  echo "seeding $N users into $backend…" >&2
  started=$(date +%s)
  if [ "$backend" = sqlite ]; then seed_sqlite "$WORK/bench.sqlite3"; else seed_postgres "$url"; fi
  echo "  seeded in $(($(date +%s) - started)) s" >&2
  printf '%s\n' "$ADMIN_PASSWORD" | "$BIN" createsuperuser --username benchadmin --email admin@bench.example --password-stdin >/dev/null
  "$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/health/" >/dev/null && break; sleep 0.1; done
  ACCESS=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/login/" -H 'Content-Type: application/json' \
    -d "{\"username\": \"benchadmin\", \"password\": \"$ADMIN_PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')
  for query in "${QUERIES[@]}"; do
    status=$(curl -s -o "$WORK/body.json" -w '%{http_code}' -H "Authorization: Bearer $ACCESS" "http://127.0.0.1:$PORT$query")
    count=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["count"])' "$WORK/body.json")
    [ "$status" = 200 ] || { echo "$query answered $status" >&2; exit 1; }
    RESULT["$backend|$query"]="$(time_get "$query") $count"
  done
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  [ "$backend" = postgres ] && psql "$PG_SERVER/postgres" -qc "DROP DATABASE IF EXISTS $name" >/dev/null
done

echo
echo "GET /api/users/ with $N users — median / p90 ms over $REPEAT requests (count = matching users)"
echo
header="| query |"; rule="|---|"
for backend in $BACKENDS; do header+=" $backend |"; rule+="---|"; done
echo "$header"; echo "$rule"
for query in "${QUERIES[@]}"; do
  row="| \`$query\` |"
  for backend in $BACKENDS; do
    read -r median p90 count <<<"${RESULT["$backend|$query"]}"
    row+=" $median / $p90 (count $count) |"
  done
  echo "$row"
done
