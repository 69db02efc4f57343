#!/usr/bin/env bash
# Sarama 1.22.1 (Debian golang-github-shopify-sarama-dev): builds main.go with Debian's Go in
# GOPATH mode from /usr/share/gocode, offline, into a temp dir, then runs it. See main.go for
# the checks and for what a Kafka 4 user of this Sarama must configure.
set -uo pipefail
b="$1"
f=sarama
here="$(cd "$(dirname "$0")" && pwd)"
src=/usr/share/gocode/src/github.com/Shopify/sarama
if ! command -v go >/dev/null; then echo "FAIL $f install: go is not installed (Debian golang-go)"; exit 1; fi
if [ ! -f "$src/sarama.go" ]; then echo "FAIL $f install: $src is missing (Debian golang-github-shopify-sarama-dev)"; exit 1; fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off CGO_ENABLED=1
# keep Go's build cache between runs when there is a usable one, else build in the temp dir
gc="$(go env GOCACHE 2>/dev/null)"
if [ -z "$gc" ] || [ "$gc" = off ] || ! mkdir -p "$gc" 2>/dev/null || [ ! -w "$gc" ]; then export GOCACHE="$tmp/gocache"; fi
start=$(date +%s)
if ! go build -o "$tmp/sarama-check" "$here/main.go" >"$tmp/build.log" 2>&1; then
  echo "FAIL $f build: go build failed: $(grep -v 'warning\|note:\|^ \|^In file\|cgo-gcc-prolog\|^#' "$tmp/build.log" | head -3 | tr '\n' ' ')"
  cat "$tmp/build.log" >&2
  exit 1
fi
echo "# $("$here/version.sh" 2>/dev/null || true) built in $(( $(date +%s) - start )) s" >&2
"$tmp/sarama-check" "$b"
