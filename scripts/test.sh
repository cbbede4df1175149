#!/usr/bin/env bash
# Runs the whole test suite on what is installed: lint (Biome format and lint, type checks with
# noUnusedLocals including the type tests, knip's dead-export check), then every test/**/*.test.ts
# with node:test (tsx compiles TypeScript and standard decorators).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== lint (biome check, tsc --noEmit, knip)"
npm run --silent lint
echo "== node:test"
mapfile -t files < <(find test -name '*.test.ts' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files found under test/" >&2; exit 1; fi
exec node --import tsx --test --test-concurrency=2 --test-reporter=spec "${files[@]}"
