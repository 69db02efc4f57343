#!/usr/bin/env bash
# kcat (Debian's build links librdkafka 2.0.2: non-flexible Produce v7, Fetch v11, Metadata v4).
set -uo pipefail
b="$1"
f=kcat
pass() { echo "PASS $f $1"; }
fail() { echo "FAIL $f $1: $2"; }
if ! command -v kcat >/dev/null; then fail install "kcat is not installed"; exit 1; fi
echo "# $(kcat -V 2>&1 | head -1)" >&2

out="$(kcat -b "$b" -L 2>&1)"
if echo "$out" | grep -q "1 brokers:"; then pass metadata; else fail metadata "$out"; fi

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
seq 1 100000 >"$tmp/lines"
if kcat -b "$b" -P -t kcat-lines <"$tmp/lines" 2>"$tmp/p.err"; then pass produce-100k; else fail produce-100k "$(cat "$tmp/p.err")"; fi
kcat -b "$b" -C -t kcat-lines -o beginning -e -q >"$tmp/got" 2>"$tmp/c.err"
if cmp -s "$tmp/lines" "$tmp/got"; then pass consume-100k; else fail consume-100k "got $(wc -l <"$tmp/got") lines, expected 100000 in order"; fi

printf 'k1:v1\nk2:v2\nk1:v3\n' | kcat -b "$b" -P -t kcat-keyed -K: 2>/dev/null
got="$(kcat -b "$b" -C -t kcat-keyed -o beginning -e -q -K: 2>/dev/null | tr '\n' ' ')"
if [ "$got" = "k1:v1 k2:v2 k1:v3 " ]; then pass keyed; else fail keyed "got '$got'"; fi

# offset lookup by timestamp (ListOffsets): timestamp 0 -> the first offset
q="$(kcat -b "$b" -Q -t kcat-lines:0:0 2>&1)"
if echo "$q" | grep -q "offset 0"; then pass offsets-for-times; else fail offsets-for-times "$q"; fi
