#!/usr/bin/env bash
# Installs the Node clients of tests/clients/package-lock.json (kafkajs, @platformatic/kafka) with
# `npm ci` into tests/clients/node_modules; skipped when that lock file is already installed.
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)"
command -v npm >/dev/null || { echo "npm is not installed (the machines carry Node.js 20 and npm)" >&2; exit 1; }
stamp="$dir/node_modules/.corral-lock.sha256"
want="$(sha256sum "$dir/package-lock.json" | awk '{print $1}')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
