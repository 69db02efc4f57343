#!/usr/bin/env bash
# confluent-kafka-go from Debian bookworm (golang-github-confluentinc-confluent-kafka-go-dev
# 0.11.6, sources under /usr/share/gocode/src; cgo over Debian's librdkafka-dev 2.0.2) and
# Debian's Go 1.19; check.sh builds with them offline in GOPATH mode (cgo: gcc, libc6-dev,
# pkg-config). Needs root or sudo; .ci/run ran apt-get update.
set -euo pipefail
pkgs=(golang-go golang-github-confluentinc-confluent-kafka-go-dev librdkafka-dev gcc libc6-dev pkg-config)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
