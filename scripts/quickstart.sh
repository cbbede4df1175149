#!/usr/bin/env bash
# Quick start: install if needed, then run the sensor-sums example on its bundled sample file with
# in-memory state (no Kafka, no AWS), closing the windows still open at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
exec node framework/bin/sluice.js dev sensor-sums --flush "$@"
