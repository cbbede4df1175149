#!/usr/bin/env bash
# The one command that runs everything from a fresh clone: installs dependencies, starts the real
# Kafka broker and DynamoDB Local (jars fetched once with Maven), runs the whole suite, and stops
# what it started, even when tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ "${CI:-}" = "true" ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
started=0
cleanup() {
  if [ "$started" = 1 ]; then
    echo "== stopping Kafka and DynamoDB Local"
    node --import tsx scripts/infra/infra.ts down || true
  fi
}
trap cleanup EXIT
echo "== Python tools (cfn-lint) into a virtualenv"
export SLUICE_PYTHON_BIN="$(bash scripts/python-tools.sh)"
echo "== starting Kafka and DynamoDB Local"
started=1
node --import tsx scripts/infra/infra.ts up
export SLUICE_REQUIRE_INFRA=1
bash scripts/test.sh
