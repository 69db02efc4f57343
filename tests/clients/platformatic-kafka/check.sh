#!/usr/bin/env bash
# @platformatic/kafka (pure JS, flexible versions). check.sh BOOTSTRAP
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v node >/dev/null; then echo "FAIL platformatic-kafka install: node is not installed"; exit 1; fi
exec node "$here/check.mjs" "$1"
