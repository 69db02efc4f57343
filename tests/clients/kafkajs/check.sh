#!/usr/bin/env bash
# kafkajs 2.2.4 (non-flexible protocol versions only). check.sh BOOTSTRAP
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v node >/dev/null; then echo "FAIL kafkajs install: node is not installed"; exit 1; fi
KAFKAJS_NO_PARTITIONER_WARNING=1 exec node "$here/check.mjs" "$1"
