#!/usr/bin/env bash
# gatehouse side by side with the Django original and with this machine's ceiling.
#
#   bash bench/run.sh                        # the full benchmark (~10 minutes on 2 cores)
#   DURATION=5 RUNS=1 bash bench/run.sh      # a quick check that everything works
#
# Starts each server in turn on loopback, on a fresh database for every scenario, and
# drives it with wrk (Debian's package, installed if missing), the same settings for all:
#   me        GET /api/users/me/ with a valid access token
#   login     POST /api/login/ (one user, right password: a full hash verification each)
#   register  POST /api/register/ with a new username every request
#   refresh   POST /api/token/refresh/, each refresh token used once, following rotation
#   mixed     `me` measured while a login flood runs (CONNECTIONS more connections)
# The ceiling (examples/ceiling.rs: a fixed 200 JSON answer) runs `me` only.
# Reports requests/s, p50 and p99 latency, errors, and the server's resident memory
# (all its processes) idle and at peak under load; measures Argon2's cost in-process
# (examples/hash_time.rs); writes the results into bench/RESULTS.md between the
# markers of its section, leaving the rest of the file alone.
#
# Variables: DURATION (seconds per measurement, 15), RUNS (2), CONNECTIONS (64),
# THREADS (wrk threads, 2), SERVERS ("ceiling gatehouse django"),
# SCENARIOS ("me login register refresh mixed"), RESULTS (bench/RESULTS.md; "-" prints
# the section instead), GATEHOUSE_ENV (extra VAR=value words for gatehouse, to try a
# setting), GATEHOUSE_BIN (a gatehouse binary to measure instead of this tree's release
# build, to compare two builds in one sitting), KEEP (1: keep the work directory with
# logs and databases).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-15}
RUNS=${RUNS:-2}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SERVERS=${SERVERS:-ceiling gatehouse django}
SCENARIOS=${SCENARIOS:-me login register refresh mixed}
RESULTS=${RESULTS:-bench/RESULTS.md}
GATEHOUSE_ENV=${GATEHOUSE_ENV:-}
PORT=18181
BASE=http://127.0.0.1:$PORT
# Long enough for a login queued behind a flood of PBKDF2 on Django: a timeout would
# count as an error and hide the latency.
WRK_TIMEOUT=30s
# The benchmark's own secret and password; they guard nothing.
export SECRET_KEY=bench-only-secret-key-not-for-production-0123456789
export BENCH_USER=benchuser
export BENCH_PASSWORD=correct-Horse-battery-42
export BENCH_WRK=$ROOT/bench/wrk
export WRK_THREADS=$THREADS

say() { printf '==> %s\n' "$*" >&2; }

# --- tools and builds ------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  say "installing wrk (Debian package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool" >&2; exit 1; }
done

say "building gatehouse and the examples (release)"
cargo build --release --quiet --bin gatehouse --example ceiling --example hash_time
GATEHOUSE=${GATEHOUSE_BIN:-$ROOT/target/release/gatehouse}
CEILING=$ROOT/target/release/examples/ceiling
if [[ " $SERVERS " == *" django "* ]]; then
  say "installing the Django reference (bench/django/.venv)"
  bash bench/django/ctl.sh install
fi

WORK=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
SERVER_PID=
FLOOD_PID=
CURRENT_SERVER=
cleanup() {
  [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null || true
  stop_server || true
  if [ "${KEEP:-0}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
RAW=$WORK/raw.tsv
printf 'run\tserver\tscenario\trps\tp50_ms\tp99_ms\terrors\trequests\trss_idle_kib\trss_peak_kib\n' >"$RAW"

# Argon2id's CPU time at gatehouse's parameters, in-process: the hash limit. Timed at the
# start and again right before each run's gatehouse `login`, and the report takes the
# medians: on a shared machine the hash time moves from minute to minute, and the limit
# should come from the minutes the logins are measured in.
time_hash() { # $1 output file
  # With gatehouse's environment, so it reports the hash pool size gatehouse will use.
  env $GATEHOUSE_ENV "$ROOT/target/release/examples/hash_time" >"$1"
  grep -E '^(hash|verify)_cpu_ms' "$1" | tr '\n' ' ' >&2
  echo >&2
}
say "timing Argon2id in-process (examples/hash_time.rs)"
time_hash "$WORK/hash_time-00.txt"

# --- servers -----------------------------------------------------------------------------
# Resident memory of a process and all its descendants, in KiB.
rss_tree() {
  ps -eo pid=,ppid=,rss= | awk -v root="$1" '
    { parent[$1] = $2; rss[$1] = $3 }
    END {
      for (p in parent) {
        q = p
        while (q != "" && q != root && q != 0 && q != 1) q = parent[q]
        if (q == root) total += rss[p]
      }
      print total + 0
    }'
}

wait_until_up() {
  for _ in $(seq 300); do
    curl -s -o /dev/null "$BASE/api/users/me/" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited; log:" >&2; cat "$SERVER_LOG" >&2; return 1; }
    sleep 0.1
  done
  echo "the server did not come up" >&2
  return 1
}

start_server() { # $1: ceiling | gatehouse | django, $2: a name for its files; a fresh database each time
  local db=$WORK/$2
  SERVER_LOG=$WORK/$2.log
  case $1 in
    ceiling)
      "$CEILING" "127.0.0.1:$PORT" >"$SERVER_LOG" 2>&1 &
      SERVER_PID=$!
      ;;
    gatehouse)
      # Throttles off (as for Django, which has none configured); access tokens that
      # outlive the run; everything else at its default, logging included.
      env DATABASE_URL="sqlite://$db.sqlite3" GATEHOUSE_BIND="127.0.0.1:$PORT" \
        GATEHOUSE_RATE_LIMIT=off ACCESS_TOKEN_LIFETIME=1h $GATEHOUSE_ENV \
        "$GATEHOUSE" serve >"$SERVER_LOG" 2>&1 &
      SERVER_PID=$!
      ;;
    django)
      DJANGO_DB=$db.sqlite3 bash bench/django/ctl.sh migrate
      SERVER_PID=$(DJANGO_DB=$db.sqlite3 ACCESS_TOKEN_SECONDS=3600 DJANGO_LOG=$SERVER_LOG \
        bash bench/django/ctl.sh start "127.0.0.1:$PORT")
      ;;
  esac
  wait_until_up
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  if [ "$CURRENT_SERVER" = django ]; then
    bash bench/django/ctl.sh stop "$SERVER_PID"
  else
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}

post_json() { # $1 path, $2 body → the answer's body
  curl -s -X POST -H 'Content-Type: application/json' -d "$2" "$BASE$1"
}

json_field() { # $1 field: reads JSON on stdin
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

register_bench_user() {
  post_json /api/register/ "{\"username\":\"$BENCH_USER\",\"email\":\"$BENCH_USER@example.com\",\"password\":\"$BENCH_PASSWORD\"}" >/dev/null
}

login_body="{\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}"

# --- measurements ------------------------------------------------------------------------
# Runs wrk with a scenario's script for DURATION seconds while sampling the server's
# memory; prints "rps p50 p99 errors requests peak_rss".
measure() { # $1 script, $2 path, then extra wrk options
  local script=$1 path=$2
  shift 2
  local peak_file=$WORK/peak
  echo 0 >"$peak_file"
  (
    peak=0
    while :; do
      now=$(rss_tree "$SERVER_PID")
      [ "$now" -gt "$peak" ] && peak=$now && echo "$peak" >"$peak_file"
      sleep 0.25
    done
  ) &
  local sampler=$!
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" \
    -s "$BENCH_WRK/$script" "$@" "$BASE$path" >"$WRK_OUT" 2>&1 || true
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  local line
  line=$(grep '^RESULT ' "$WRK_OUT" || true)
  if [ -z "$line" ]; then
    echo "wrk failed:" >&2
    cat "$WRK_OUT" >&2
    return 1
  fi
  python3 - "$line" "$(cat "$peak_file")" <<'PY'
import sys
kv = dict(item.split("=") for item in sys.argv[1].split()[1:])
print(kv["rps"], kv["p50_ms"], kv["p99_ms"], kv["errors"], kv["requests"], sys.argv[2])
PY
}

scenario() { # $1 run, $2 server, $3 scenario
  local run=$1 server=$2 name=$3
  WRK_OUT=$WORK/$run-$server-$name.wrk
  CURRENT_SERVER=$server
  if [ "$server" = gatehouse ] && [ "$name" = login ]; then
    say "timing Argon2id again before run $run's login"
    # Two digits, so the files sort in run order for the report.
    time_hash "$WORK/hash_time-$(printf %02d "$run").txt"
  fi
  start_server "$server" "$run-$server-$name"
  case $name in
    me | mixed)
      if [ "$server" != ceiling ]; then
        register_bench_user
        ACCESS=$(post_json /api/login/ "$login_body" | json_field access)
        export ACCESS
      else
        export ACCESS=none
      fi
      ;;
    login) register_bench_user ;;
    register) ;;
    refresh)
      register_bench_user
      # One session per connection and one spare per wrk thread (bench/wrk/refresh.lua
      # says why), logged in four at a time.
      seq $((CONNECTIONS + THREADS)) | xargs -P 4 -I{} curl -s -X POST -H 'Content-Type: application/json' \
        -d "$login_body" "$BASE/api/login/" -o "$WORK/login-{}.json"
      python3 -c 'import json, sys; print("\n".join(json.load(open(f))["refresh"] for f in sys.argv[1:]))' \
        "$WORK"/login-*.json >"$WORK/tokens.txt"
      rm -f "$WORK"/login-*.json
      export TOKENS_FILE=$WORK/tokens.txt
      ;;
  esac
  sleep 1
  local idle
  idle=$(rss_tree "$SERVER_PID")
  local result
  case $name in
    me) result=$(measure me.lua /api/users/me/) ;;
    login) result=$(measure login.lua /api/login/) ;;
    register) result=$(measure register.lua /api/register/) ;;
    refresh) result=$(measure refresh.lua /api/token/refresh/) ;;
    mixed)
      # The flood starts first and outlasts the measurement.
      wrk -t1 -c"$CONNECTIONS" -d"$((DURATION + 4))s" --timeout "$WRK_TIMEOUT" \
        -s "$BENCH_WRK/login.lua" "$BASE/api/login/" >"$WORK/$run-$server-$name.flood" 2>&1 &
      FLOOD_PID=$!
      sleep 2
      result=$(measure me.lua /api/users/me/)
      wait "$FLOOD_PID" || true
      FLOOD_PID=
      ;;
  esac
  stop_server
  read -r rps p50 p99 errors requests peak <<<"$result"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$server" "$name" "$rps" "$p50" "$p99" \
    "$errors" "$requests" "$idle" "$peak" >>"$RAW"
  say "run $run $server $name: $rps req/s, p50 $p50 ms, p99 $p99 ms, $errors errors, RSS idle $((idle / 1024)) MiB, peak $((peak / 1024)) MiB"
}

# Runs interleave (run 1 of everything, then run 2), so a noisy minute on a shared
# machine spreads over all servers instead of hitting one.
STARTED=$(date +%s)
for run in $(seq "$RUNS"); do
  for server in $SERVERS; do
    for name in $SCENARIOS; do
      [ "$server" = ceiling ] && [ "$name" != me ] && continue
      scenario "$run" "$server" "$name"
    done
  done
done
ELAPSED=$(($(date +%s) - STARTED))

# --- the report ----------------------------------------------------------------------
VERSIONS=$WORK/versions.txt
{
  echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
  echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc: $(rustc --version)"
  echo "gatehouse: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  if [ -x bench/django/.venv/bin/python ]; then
    echo "python: $(bench/django/.venv/bin/python --version 2>&1)"
    echo "django stack: $(bench/django/.venv/bin/python -m pip freeze --disable-pip-version-check 2>/dev/null | grep -Ei '^(django|djangorestframework|djangorestframework.simplejwt|gunicorn|pyjwt)==' | tr '\n' ' ')"
  fi
} >"$VERSIONS"

python3 bench/report.py --raw "$RAW" --hash "$WORK"/hash_time-*.txt --versions "$VERSIONS" \
  --duration "$DURATION" --runs "$RUNS" --connections "$CONNECTIONS" --threads "$THREADS" \
  --elapsed "$ELAPSED" --gatehouse-env "$GATEHOUSE_ENV" --results "$RESULTS"
[ "$RESULTS" = - ] || say "wrote $RESULTS"
