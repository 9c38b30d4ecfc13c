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

echo "=== test suite on SQLite (in-process bus) ==="
# Tests marked `services` need PostgreSQL and Redis together; they run in the second pass.
env -u ABONENT_TEST_DATABASE_URL -u ABONENT_TEST_REDIS_URL .venv/bin/python -m pytest -q -m "not services" "$@"

echo "=== test suite on PostgreSQL + Redis ==="
ABONENT_TEST_DATABASE_URL=$PG_URL ABONENT_TEST_REDIS_URL=$REDIS_URL .venv/bin/python -m pytest -q "$@"
