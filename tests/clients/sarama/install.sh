#!/usr/bin/env bash
# Sarama from Debian bookworm (golang-github-shopify-sarama-dev 1.22.1, sources under
# /usr/share/gocode/src) and Debian's Go 1.19; check.sh builds with them offline in GOPATH
# mode. Sarama imports github.com/DataDog/zstd, a cgo package: gcc and libc6-dev are needed.
# Needs root or sudo; .ci/run ran apt-get update.
set -euo pipefail
pkgs=(golang-go golang-github-shopify-sarama-dev gcc libc6-dev pkg-config)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
