#!/usr/bin/env bash
# The mixed group needs confluent-kafka and kafka-python (pip, the versions their families pin)
# and kafkajs 2.2.4 in tests/clients/node_modules (Node.js 20 and npm are on the machines).
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)"
python3 -m pip install --quiet --disable-pip-version-check confluent-kafka==2.16.1 kafka-python==3.0.12
command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 1; }
have="$(cd "$dir/mixed" && node -e "console.log(require('kafkajs/package.json').version)" 2>/dev/null || true)"
[ "$have" = "2.2.4" ] && exit 0
if [ -f "$dir/package.json" ]; then
  if [ -f "$dir/package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  else
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
else
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --no-save kafkajs@2.2.4
fi
