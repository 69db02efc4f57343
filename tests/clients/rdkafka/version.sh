#!/usr/bin/env bash
root="$(cd "$(dirname "$0")/../../.." && pwd)"
v=$(grep -A1 '^name = "rdkafka-sys"' "$root/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')
r=$(grep -A1 '^name = "rdkafka"$' "$root/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')
echo "rdkafka crate $r (rdkafka-sys $v, bundled librdkafka ${v#*+})"
