#!/usr/bin/env bash
# Creates (once) a virtualenv with the Python tools the tests use (requirements-dev.txt: cfn-lint,
# and through it scripts/models/requirements.txt: the model training script's packages) under the
# cache directory, and prints its bin directory. Reinstalls when either requirements file changes.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SLUICE_CACHE:-$HOME/.cache/sluice}"
venv="$cache/venv"
stamp="$venv/.requirements-$(cat requirements-dev.txt scripts/models/requirements.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  command -v python3 >/dev/null || { echo "python3 is required for the test tools (cfn-lint, the model training script); install Python 3.11+" >&2; exit 1; }
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements-dev.txt >&2
  touch "$stamp"
fi
echo "$venv/bin"
