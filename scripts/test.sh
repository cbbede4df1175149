#!/usr/bin/env bash
# Runs the whole test suite on what is installed: type checks (including the type tests), then
# every test/**/*.test.ts with node:test (tsx compiles TypeScript and standard decorators).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== typecheck (tsc --noEmit)"
npx tsc --noEmit -p tsconfig.json
echo "== node:test"
mapfile -t files < <(find test -name '*.test.ts' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files found under test/" >&2; exit 1; fi
exec node --import tsx --test --test-concurrency=2 --test-reporter=spec "${files[@]}"
