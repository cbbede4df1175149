#!/usr/bin/env bash
# The one command that runs everything from a fresh clone: installs dependencies, starts the real
# Kafka broker and DynamoDB Local (jars fetched once with Maven), runs the whole suite, and stops
# what it started, even when tests fail. A broker or DynamoDB Local that was already running
# (another terminal, another engineer) is used and left running.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ "${CI:-}" = "true" ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
infra() { node --import tsx scripts/infra/infra.ts "$@"; }
# Decided before `up`, which returns quietly for a service that already runs.
started=()
for service in kafka dynamodb; do
  if ! infra status "$service" | grep -q ': running'; then started+=("$service"); fi
done
cleanup() {
  for service in ${started[@]+"${started[@]}"}; do
    echo "== stopping $service (started by this run)"
    infra down "$service" || true
  done
}
trap cleanup EXIT
echo "== Python tools (cfn-lint) into a virtualenv"
export SLUICE_PYTHON_BIN="$(bash scripts/python-tools.sh)"
if [ "${#started[@]}" -gt 0 ]; then echo "== starting ${started[*]}"; else echo "== Kafka and DynamoDB Local already running: using them, leaving them running"; fi
infra up
export SLUICE_REQUIRE_INFRA=1
bash scripts/test.sh
