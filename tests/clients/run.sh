#!/usr/bin/env bash
# Runs real Kafka clients against one corral on an ephemeral port.
#
#   tests/clients/run.sh [family...]      (default: every family)
#
# Each family's check script prints "PASS <family> <check>" or "FAIL <family> <check>: <why>"
# lines. A family whose client is not installed is reported as FAIL, never skipped.
# Ends with "N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
all_families=(kcat confluent-kafka)
families=("$@")
[ ${#families[@]} -eq 0 ] && families=("${all_families[@]}")

bin="${CORRAL_BIN:-$root/target/debug/corral}"
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --quiet) || { echo "FAIL setup build: cargo build failed"; echo "0 passed, 1 failed"; exit 1; }
fi

work="$(mktemp -d)"
log="$work/corral.log"
"$bin" --ephemeral --listen 127.0.0.1:0 >"$work/corral.out" 2>"$log" &
corral_pid=$!
cleanup() { kill "$corral_pid" 2>/dev/null; wait "$corral_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/corral.out" 2>/dev/null && break
  sleep 0.05
done
bootstrap="$(grep -o 'listening on [0-9.:]*' "$work/corral.out" | awk '{print $3}' | tr -d ,)"
if [ -z "$bootstrap" ]; then
  echo "FAIL setup start: corral did not start"; cat "$log"; echo "0 passed, 1 failed"; exit 1
fi
echo "corral $("$bin" --version | awk '{print $2}') at $bootstrap"

results="$work/results"
: >"$results"
for f in "${families[@]}"; do
  dir="$here/$f"
  if [ ! -d "$dir" ]; then
    echo "FAIL $f setup: no such family" | tee -a "$results"
    continue
  fi
  echo "--- $f"
  if [ -x "$dir/check.sh" ]; then
    timeout 900 "$dir/check.sh" "$bootstrap" 2>"$work/$f.err" | tee -a "$results"
  elif [ -f "$dir/check.py" ]; then
    timeout 900 python3 "$dir/check.py" "$bootstrap" 2>"$work/$f.err" | tee -a "$results"
  else
    echo "FAIL $f setup: no check script" | tee -a "$results"
  fi
  status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ] && ! grep -q "^FAIL $f " "$results"; then
    echo "FAIL $f run: the check script exited with $status" | tee -a "$results"
  fi
  if [ "$status" -ne 0 ] || grep -q "^FAIL $f " "$results"; then
    echo "    stderr of $f:"; tail -n 20 "$work/$f.err" | sed 's/^/    /'
  fi
done

if ! kill -0 "$corral_pid" 2>/dev/null; then
  echo "FAIL corral alive: the server died during the run" | tee -a "$results"
  tail -n 50 "$log"
fi
passed=$(grep -c '^PASS ' "$results")
failed=$(grep -c '^FAIL ' "$results")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
