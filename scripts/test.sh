#!/usr/bin/env bash
# The whole test suite, as README and CI run it: installs the test extras (and Debian's
# Chromium for the browser tests when missing), checks lint and types, then runs pytest
# twice: on SQLite, and on PostgreSQL + Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

if [[ ! -x /usr/bin/chromium ]]; then
  echo "Installing Debian's chromium for the browser tests..."
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
    || echo "WARNING: could not install chromium; browser tests will skip (and fail under CI=true)."
fi

.venv/bin/ruff check src tests bench
.venv/bin/mypy

PG_URL=${ABONENT_TEST_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test}
REDIS_URL=${ABONENT_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}

# The two passes run side by side (much of a pass is waiting on servers, browsers and
# platform retry delays, so two fit on two cores); ABONENT_TEST_SERIAL=1 runs them one
# after the other. Each pass spreads its test files over two pytest-xdist workers (each with
# its own database and Redis database number). Each pass's output is printed whole when both are done.
# Tests marked `services` need PostgreSQL and Redis together; they run in the second pass.
sqlite_pass() {
  env -u ABONENT_TEST_DATABASE_URL -u ABONENT_TEST_REDIS_URL \
    .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile -m "not services" "$@"
}
services_pass() {
  ABONENT_TEST_DATABASE_URL=$PG_URL ABONENT_TEST_REDIS_URL=$REDIS_URL \
    .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile "$@"
}

if [[ ${ABONENT_TEST_SERIAL:-} == 1 ]]; then
  echo "=== test suite on SQLite (in-process bus) ==="
  sqlite_pass "$@"
  echo "=== test suite on PostgreSQL + Redis ==="
  services_pass "$@"
  exit 0
fi

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
echo "=== test suite on SQLite (in-process bus) and on PostgreSQL + Redis, side by side ==="
sqlite_pass "$@" >"$LOGS/sqlite.log" 2>&1 &
SQLITE_PID=$!
services_pass "$@" >"$LOGS/services.log" 2>&1 &
SERVICES_PID=$!
status=0
wait "$SQLITE_PID" || status=1
echo "=== test suite on SQLite (in-process bus) ==="
cat "$LOGS/sqlite.log"
wait "$SERVICES_PID" || status=1
echo "=== test suite on PostgreSQL + Redis ==="
cat "$LOGS/services.log"
exit "$status"
