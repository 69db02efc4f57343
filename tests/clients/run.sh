#!/usr/bin/env bash
# Runs real Kafka clients against one corral on an ephemeral port.
#
#   tests/clients/run.sh [family...]      (default: every family)
#
# A family is a directory here with a check script (check.sh, or check.py run by python3)
# taking the bootstrap address. It prints "PASS <family> <check>" or
# "FAIL <family> <check>: <why>" lines; a family whose client is not installed must print a
# FAIL line, never skip. Each family's version.sh prints one line naming the client and its
# version; the suite prints them all first. Ends with "N passed, M failed" and exits non-zero
# on any failure.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
families=("$@")
if [ ${#families[@]} -eq 0 ]; then
  for d in "$here"/*/; do
    d="${d%/}"
    if [ -e "$d/check.sh" ] || [ -e "$d/check.py" ]; then families+=("$(basename "$d")"); fi
  done
fi

bin="${CORRAL_BIN:-$root/target/debug/corral}"
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --quiet) || { echo "FAIL setup build: cargo build failed"; echo "0 passed, 1 failed"; exit 1; }
fi

echo "== client versions"
for f in "${families[@]}"; do
  if [ -x "$here/$f/version.sh" ]; then
    v="$("$here/$f/version.sh" 2>/dev/null | head -1)"
    echo "  $f: ${v:-not installed}"
  fi
done

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
echo "== corral $("$bin" --version | awk '{print $2}') at $bootstrap"

results="$work/results"
: >"$results"
for f in "${families[@]}"; do
  dir="$here/$f"
  echo "--- $f"
  start=$(date +%s)
  if [ -x "$dir/check.sh" ]; then
    timeout 900 "$dir/check.sh" "$bootstrap" 2>"$work/$f.err" | tee -a "$results"
  elif [ -f "$dir/check.py" ]; then
    timeout 900 python3 "$dir/check.py" "$bootstrap" 2>"$work/$f.err" | tee -a "$results"
  else
    echo "FAIL $f setup: no such family, or no check script" | tee -a "$results"
  fi
  status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ] && ! grep -q "^FAIL $f " "$results"; then
    echo "FAIL $f run: the check script exited with $status" | tee -a "$results"
  fi
  if [ "$status" -ne 0 ] || grep -q "^FAIL $f " "$results"; then
    echo "    last lines of $f's stderr:"; tail -n 20 "$work/$f.err" | sed 's/^/    /'
  fi
  echo "    ($f took $(( $(date +%s) - start )) s)"
done

if ! kill -0 "$corral_pid" 2>/dev/null; then
  echo "FAIL corral alive: the server died during the run" | tee -a "$results"
  tail -n 50 "$log"
fi
passed=$(grep -c '^PASS ' "$results")
failed=$(grep -c '^FAIL ' "$results")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
