#!/usr/bin/env bash
# Installs (once) osls, the maintained open-source fork of Serverless Framework v3, into the cache
# directory, and prints the path of its CLI. The packaging tests check that the Sluice plugin gives
# the same template with it as with Serverless v3.
set -euo pipefail
version=4.3.1
cache="${SLUICE_CACHE:-$HOME/.cache/sluice}/osls-$version"
cli="$cache/node_modules/osls/bin/serverless.js"
if [ ! -f "$cli" ]; then
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-audit --no-fund --no-save --loglevel=error "osls@$version" >&2
fi
echo "$cli"
