#!/usr/bin/env bash
# The one command that runs everything from a fresh clone: installs dependencies, starts what the
# tests need, runs the suite, and stops what it started, even when tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ "${CI:-}" = "true" ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
cleanup() { :; }  # infrastructure started by later suites is stopped here
trap cleanup EXIT
bash scripts/test.sh
