#!/usr/bin/env bash
# Debian's kcat (links librdkafka 2.0.2). Needs root or sudo; .ci/run ran apt-get update.
set -euo pipefail
command -v kcat >/dev/null && exit 0
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kcat
