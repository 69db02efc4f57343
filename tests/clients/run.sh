#!/usr/bin/env bash
# Runs real Kafka clients against one corral on an ephemeral port.
#
#   tests/clients/run.sh [--proxy] [family...]      (default: every family)
#
# A family is a directory here with a check script (check.sh, or check.py run by python3)
# taking the bootstrap address. It prints "PASS <family> <check>" or
# "FAIL <family> <check>: <why>" lines; a family whose client is not installed must print a
# FAIL line, never skip. Each family's version.sh prints one line naming the client and its
# version; the suite prints them all first. Ends with "N passed, M failed, K skipped" and exits
# non-zero on any failure (or when nothing passed).
#
# --proxy: the same families through `corral proxy` in front of a three-broker upstream,
# librdkafka's mock cluster (mock_upstream.py). The families get CORRAL_MODE=proxy,
# CORRAL_MOCK_CONTROL=<host:port> (mock_upstream.py's control port: they create their topics
# there, the mock having no CreateTopics) and CORRAL_EXPECT_BROKERS=4 (three upstream brokers
# and corral's own node). A check that cannot run because the upstream lacks an API prints
# "SKIP <family> <check>: <why>"; skips are counted apart, never as passes. Without --proxy
# the families get none of these variables and run against corral in broker mode.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
proxy=0
families=()
for a in "$@"; do
  if [ "$a" = --proxy ]; then proxy=1; else families+=("$a"); fi
done
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
corral_pid=
mock_pid=
cleanup() {
  [ -n "$corral_pid" ] && { kill "$corral_pid" 2>/dev/null; wait "$corral_pid" 2>/dev/null; }
  [ -n "$mock_pid" ] && { kill "$mock_pid" 2>/dev/null; wait "$mock_pid" 2>/dev/null; }
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$proxy" -eq 1 ]; then
  # the upstream: librdkafka's mock cluster with three brokers
  python3 "$here/mock_upstream.py" --brokers 3 </dev/null >"$work/mock.out" 2>"$work/mock.err" &
  mock_pid=$!
  for _ in $(seq 1 200); do
    grep -q "^CONTROL " "$work/mock.out" 2>/dev/null && break
    kill -0 "$mock_pid" 2>/dev/null || break
    sleep 0.05
  done
  upstream="$(awk '/^BOOTSTRAP /{print $2}' "$work/mock.out")"
  control="$(awk '/^CONTROL /{print $2}' "$work/mock.out")"
  if [ -z "$upstream" ] || [ -z "$control" ]; then
    echo "FAIL setup upstream: mock_upstream.py did not start"; cat "$work/mock.err"
    echo "0 passed, 1 failed, 0 skipped"; exit 1
  fi
  echo "== upstream: $(grep -o 'librdkafka.*' "$work/mock.err" | head -1) at $upstream (control $control)"
  "$bin" proxy --upstream "$upstream" --ephemeral --listen 127.0.0.1:0 >"$work/corral.out" 2>"$log" &
  corral_pid=$!
else
  "$bin" --ephemeral --listen 127.0.0.1:0 >"$work/corral.out" 2>"$log" &
  corral_pid=$!
fi
for _ in $(seq 1 200); do
  grep -q "listening on" "$work/corral.out" 2>/dev/null && break
  kill -0 "$corral_pid" 2>/dev/null || break
  sleep 0.05
done
bootstrap="$(grep -o 'listening on [0-9.:]*' "$work/corral.out" | awk '{print $3}' | tr -d ,)"
if [ -z "$bootstrap" ]; then
  echo "FAIL setup start: corral did not start"; cat "$log"; echo "0 passed, 1 failed, 0 skipped"; exit 1
fi
if [ "$proxy" -eq 1 ]; then
  export CORRAL_MODE=proxy CORRAL_MOCK_CONTROL="$control" CORRAL_EXPECT_BROKERS=4
  echo "== $(head -1 "$work/corral.out")"
else
  echo "== corral $("$bin" --version | awk '{print $2}') at $bootstrap"
fi

results="$work/results"
: >"$results"
for f in "${families[@]}"; do
  dir="$here/$f"
  echo "--- $f"
  start=$(date +%s)
  if [ "$proxy" -eq 1 ] && [ "$f" = rdkafka ]; then
    # its checks are `cargo test` binaries that start their own corral; the rdkafka crate's
    # scenarios through the proxy (over their own mock cluster) are tests/proxy.rs
    echo "SKIP rdkafka proxy-mode: the rdkafka crate's proxy scenarios run in \`cargo test\` (tests/proxy.rs, over their own mock cluster), not through this proxy" | tee -a "$results"
    echo "    ($f took 0 s)"
    continue
  fi
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
if [ -n "$mock_pid" ] && ! kill -0 "$mock_pid" 2>/dev/null; then
  echo "FAIL setup upstream: mock_upstream.py died during the run" | tee -a "$results"
  tail -n 20 "$work/mock.err"
fi
passed=$(grep -c '^PASS ' "$results")
failed=$(grep -c '^FAIL ' "$results")
skipped=$(grep -c '^SKIP ' "$results")
if [ "$proxy" -eq 1 ] && [ "$failed" -gt 0 ] && grep -q 'WARN\|ERROR' "$log"; then
  echo "    the proxy's last warnings and errors:"
  grep 'WARN\|ERROR' "$log" | sed 's/\x1b\[[0-9;]*m//g' | tail -n 15 | sed 's/^/    /'
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
