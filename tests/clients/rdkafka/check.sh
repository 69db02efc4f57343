#!/usr/bin/env bash
# librdkafka through the rdkafka crate: its end-to-end tests live in `cargo test`
# (tests/rdkafka_data_plane.rs, tests/rdkafka_groups.rs); this reports them as suite checks.
# They start their own in-process corral, so the bootstrap argument is not used.
set -uo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="$(cd "$root" && cargo test --test rdkafka_data_plane --test rdkafka_groups 2>&1)"
status=$?
n=0
while read -r name result; do
  # child_consumer is the entry point of the SIGKILLed child process, not a check of its own
  [ "$name" = child_consumer ] && continue
  n=$((n + 1))
  if [ "$result" = "ok" ]; then echo "PASS rdkafka $name"; else echo "FAIL rdkafka $name: $result"; fi
done < <(echo "$out" | sed -n 's/^test \([a-z_0-9]*\) \.\.\. \(ok\|FAILED\)$/\1 \2/p')
if [ "$n" -eq 0 ]; then
  echo "FAIL rdkafka build: cargo test produced no test results"
  echo "$out" | tail -20 >&2
  exit 1
fi
exit $status
