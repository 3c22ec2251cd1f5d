#!/usr/bin/env bash
# Hypercore download throughput, Rust -> Rust (hypercore-cat seed / get) vs JS -> JS (hypercore 11 +
# hyperswarm 4.17.2 scripts), in the same run on a local JS HyperDHT testnet (127.0.0.1).
# A core of SIZE MiB (default 256) in 64 KiB blocks is seeded by one process; the timed part is a fresh
# `get` process: DHT lookup, connect, replication of every block (verified and stored on disk), and the
# blocks written to stdout (compared with the input on the fly). Also reported: the replication phase alone
# (from the connection to the last block stored), as each getter measures it.
# Usage: benches/hypercore-download.sh [SIZE_MIB]
# BENCH_DIR sets where the cores are written (default: a temporary directory under $TMPDIR or /tmp).
set -euo pipefail

SIZE=${1:-256}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/hypercore-download.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p holepunch --example hypercore-cat
CAT="$ROOT/target/release/examples/hypercore-cat"
INTEROP="$ROOT/tests/interop"

head -c "$((SIZE * 1024 * 1024))" /dev/urandom > "$WORK/input"

# The testnet runs until its stdin closes: keep a pipe open to it.
mkfifo "$WORK/testnet.in"
(cd "$INTEROP" && exec node js/testnet.js 5 < "$WORK/testnet.in" > "$WORK/testnet.out") &
PIDS+=($!)
exec 3> "$WORK/testnet.in"
for _ in $(seq 600); do [ -s "$WORK/testnet.out" ] && break; sleep 0.1; done
BOOTSTRAP=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).bootstrap.join(","))' "$WORK/testnet.out")

first_line() { # waits for the first line of file $1
  for _ in $(seq 3000); do [ -s "$1" ] && head -n 1 "$1" && return; sleep 0.1; done
  echo "timeout waiting for $1" >&2; return 1
}
now() { date +%s.%N; }
TCK=$(getconf CLK_TCK)
cpu_of() { awk -v t="$TCK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; } # user+sys seconds of PID

# Rust seed -> Rust get
"$CAT" seed "$WORK/rs-seed" --bootstrap "$BOOTSTRAP" < "$WORK/input" > "$WORK/rs-seed.out" &
PIDS+=($!)
RS_KEY=$(first_line "$WORK/rs-seed.out")
RS_SEED=${PIDS[-1]}
c0=$(cpu_of "$RS_SEED")
t0=$(now)
HYPERCORE_CAT_TRACE=1 /usr/bin/time -f "%U %S" -o "$WORK/rs-get.cpu" "$CAT" get "$RS_KEY" "$WORK/rs-get" --bootstrap "$BOOTSTRAP" 2> "$WORK/rs-get.err" | cmp - "$WORK/input"
t1=$(now)
rs_seed_cpu=$(echo "$(cpu_of "$RS_SEED") - $c0" | bc)
rs_get_cpu=$(awk '{ print $1 + $2 }' "$WORK/rs-get.cpu")
# "[  0.123s] connected" ... "[  2.345s] downloaded"
rs_transfer=$(awk 'match($0, /[0-9]+\.[0-9]+/) { t = substr($0, RSTART, RLENGTH) } /connected$/ { a = t } /downloaded$/ { b = t } END { print b - a }' "$WORK/rs-get.err")
rm -rf "$WORK/rs-seed" "$WORK/rs-get"

# JS seed -> JS get
(cd "$INTEROP" && exec node js/hypercore_swarm.js "$BOOTSTRAP" seed-stdin "$WORK/js-seed" < "$WORK/input" > "$WORK/js-seed.out") &
PIDS+=($!)
JS_KEY=$(node -e 'console.log(JSON.parse(process.argv[1]).key)' "$(first_line "$WORK/js-seed.out")")
JS_SEED=${PIDS[-1]}
c0=$(cpu_of "$JS_SEED")
t2=$(now)
(cd "$INTEROP" && /usr/bin/time -f "%U %S" -o "$WORK/js-get.cpu" node js/hypercore_swarm.js "$BOOTSTRAP" cat "$JS_KEY" "$WORK/js-get" 2> "$WORK/js-get.err") | cmp - "$WORK/input"
t3=$(now)
js_seed_cpu=$(echo "$(cpu_of "$JS_SEED") - $c0" | bc)
js_get_cpu=$(awk '{ print $1 + $2 }' "$WORK/js-get.cpu")
js_transfer=$(awk '/^\[transfer\]/ { print $2 }' "$WORK/js-get.err")

awk -v s="$SIZE" -v r="$(echo "$t1 - $t0" | bc)" -v j="$(echo "$t3 - $t2" | bc)" \
    -v rt="$rs_transfer" -v jt="$js_transfer" -v rsc="$rs_seed_cpu" -v rgc="$rs_get_cpu" \
    -v jsc="$js_seed_cpu" -v jgc="$js_get_cpu" 'BEGIN {
  rr = s * 1.048576 / r; jr = s * 1.048576 / j
  printf "whole get process (DHT lookup, connect, download, stdout):\n"
  printf "  rust -> rust: %d MiB in %.2f s = %.1f MB/s\n", s, r, rr
  printf "  js   -> js:   %d MiB in %.2f s = %.1f MB/s\n", s, j, jr
  printf "  ratio rust/js = %.2f\n", rr / jr
  rr = s * 1.048576 / rt; jr = s * 1.048576 / jt
  printf "replication phase (connection to last block stored):\n"
  printf "  rust -> rust: %.2f s = %.1f MB/s\n", rt, rr
  printf "  js   -> js:   %.2f s = %.1f MB/s\n", jt, jr
  printf "  ratio rust/js = %.2f\n", rr / jr
  printf "CPU time (user+sys; steadier than wall clock on a loaded machine):\n"
  printf "  rust: seeder %.2f s + getter %.2f s = %.2f s\n", rsc, rgc, rsc + rgc
  printf "  js:   seeder %.2f s + getter %.2f s = %.2f s\n", jsc, jgc, jsc + jgc
  printf "  ratio js/rust = %.2f\n", (jsc + jgc) / (rsc + rgc)
}'
