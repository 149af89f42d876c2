#!/usr/bin/env bash
# The Django reference of the seed's API: install it, prepare a database, start and stop
# it under gunicorn.
#
#   bench/django/ctl.sh install               # virtual environment in bench/django/.venv
#   DJANGO_DB=/tmp/x.sqlite3 bench/django/ctl.sh migrate
#   DJANGO_DB=/tmp/x.sqlite3 bench/django/ctl.sh start 127.0.0.1:8001   # prints the pid
#   bench/django/ctl.sh stop PID
#   DJANGO_DB=… bench/django/ctl.sh manage createsuperuser …         # any manage.py command
#
# Variables: DJANGO_DB (SQLite file), ACCESS_TOKEN_SECONDS, DJANGO_WORKER_CLASS,
# DJANGO_WORKERS, DJANGO_THREADS (see gunicorn.conf.py), PYTHON (default python3).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${DJANGO_VENV:-$HERE/.venv}
PY=$VENV/bin/python

case "${1:-}" in
  install)
    if [ ! -x "$PY" ]; then
      "${PYTHON:-python3}" -m venv "$VENV"
    fi
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    ;;
  migrate)
    cd "$HERE" && "$PY" manage.py migrate --verbosity 0
    ;;
  manage)
    shift
    cd "$HERE" && "$PY" manage.py "$@"
    ;;
  start)
    bind=${2:-127.0.0.1:8001}
    cd "$HERE"
    DJANGO_BIND=$bind setsid "$VENV/bin/gunicorn" -c gunicorn.conf.py refapi.wsgi:application \
      >"${DJANGO_LOG:-/dev/null}" 2>&1 &
    echo $!
    ;;
  stop)
    pid=${2:?usage: ctl.sh stop PID}
    # TERM to the master: gunicorn stops its workers and exits.
    kill -TERM "$pid" 2>/dev/null || exit 0
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || exit 0
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
