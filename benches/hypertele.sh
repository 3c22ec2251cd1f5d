#!/usr/bin/env bash
# TCP throughput through a hypertele pair (client -> server -> service) on a local HyperDHT testnet: the Rust
# pair (hypertele + hypertele-server, release build) vs the JS hypertele 1.1.4 pair, in the same run.
#
#   benches/hypertele.sh [SIZE]           SIZE in bytes or with a K/M/G suffix (default 1G for Rust)
#   REPEAT=3 JS_SIZE=512M benches/hypertele.sh
#   RUST_BIN_DIR=/path/to/other/build JS_SIZE=0 benches/hypertele.sh   the Rust pair of another build
#   PERF_DIR=/tmp/prof REPEAT=1 JS_SIZE=0 benches/hypertele.sh   also records `perf record` profiles of the Rust
#                                           client and server during the Rust rounds (PERF_ARGS, default -g)
#
# A TCP source sends SIZE bytes into the client's local port; the service behind the server (a TCP sink)
# counts them and answers the count, which ends the measurement (wall clock from connect to the answer, so
# everything sent went through). The bench measures the pair, not the load generator: by default the source
# and the sink are a small Rust program (bins/hypertele/examples/tcp-bench.rs: blocking sockets, a few percent
# of a core), the same for both pairs, so that on a 2-core machine the generator does not take the CPU the
# pair needs; LOADGEN=node uses tests/interop/js/tcp-bench.js (node) as earlier runs did. Prints MB/s (10^6 bytes/s) per pair, best of REPEAT, and the
# ratio, and the CPU time (user + system) the pair's two processes spent per GB moved: on a shared, loaded
# machine the CPU time is the steadier figure. Everything stays on 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_DIR="$ROOT/tests/interop"
REPEAT="${REPEAT:-3}"

to_bytes() {
  local s="$1" n unit
  n="${s%[KkMmGg]}"
  unit="${s#"$n"}"
  case "$unit" in
    K|k) echo $((n * 1024)) ;;
    M|m) echo $((n * 1024 * 1024)) ;;
    G|g) echo $((n * 1024 * 1024 * 1024)) ;;
    "") echo "$n" ;;
  esac
}
RUST_BYTES="$(to_bytes "${1:-${SIZE:-1G}}")"
JS_BYTES="$(to_bytes "${JS_SIZE:-256M}")"

# RUST_BIN_DIR=dir runs the hypertele and hypertele-server binaries found there (an A/B against another build)
# and builds nothing (the load generator must have been built by an earlier run).
if [ -z "${RUST_BIN_DIR:-}" ]; then
  echo "== building hypertele (release)" >&2
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p hypertele --bins --example tcp-bench
fi
RUST_BIN_DIR="${RUST_BIN_DIR:-$ROOT/target/release}"
RUST_SERVER="$RUST_BIN_DIR/hypertele-server"
RUST_CLIENT="$RUST_BIN_DIR/hypertele"
case "${LOADGEN:-rust}" in
  rust) TCP_BENCH=("$ROOT/target/release/examples/tcp-bench") ;;
  node) TCP_BENCH=(node js/tcp-bench.js) ;;
  *) echo "LOADGEN must be rust or node" >&2; exit 2 ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hypertele-bench.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Starts a background process (in tests/interop) writing to $WORK/$1.out; remembers its pid.
start() {
  local name="$1"; shift
  (cd "$NODE_DIR" && exec "$@") > "$WORK/$name.out" 2>&1 < /dev/null &
  PIDS+=("$!")
}
# Waits until $WORK/$1.out has a line matching $2 and prints it.
wait_line() {
  local file="$WORK/$1.out" pattern="$2" i
  for i in $(seq 1 600); do
    if grep -q -- "$pattern" "$file" 2>/dev/null; then grep -m1 -- "$pattern" "$file"; return 0; fi
    sleep 0.1
  done
  echo "no line matching $pattern in $file:" >&2; cat "$file" >&2; return 1
}

# The testnet runs until its stdin closes: feed it from a sleeping process we can kill.
mkfifo "$WORK/testnet.in"
(sleep 100000 > "$WORK/testnet.in") &
PIDS+=("$!")
(cd "$NODE_DIR" && exec node js/testnet.js 5) < "$WORK/testnet.in" > "$WORK/testnet.out" 2>&1 &
PIDS+=("$!")
BOOTSTRAP="$(wait_line testnet bootstrap | sed 's/.*\["\([^"]*\)".*/\1/')"
echo "== testnet at $BOOTSTRAP" >&2

start sink "${TCP_BENCH[@]}" sink
SINK_PORT="$(wait_line sink '^[0-9]')"

SEED_RUST="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SEED_JS="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

start rust-server "$RUST_SERVER" --bootstrap "$BOOTSTRAP" -l "$SINK_PORT" --seed "$SEED_RUST"
RUST_PIDS="${PIDS[-1]}"
RUST_KEY="$(wait_line rust-server '^hypertele: ' | awk '{print $2}')"
start rust-client "$RUST_CLIENT" --bootstrap "$BOOTSTRAP" -p 0 -s "$RUST_KEY"
RUST_PIDS="$RUST_PIDS ${PIDS[-1]}"
RUST_PORT="$(wait_line rust-client 'Server ready' | sed 's/.*://')"

start js-server node js/hypertele.js server "$BOOTSTRAP" -l "$SINK_PORT" --seed "$SEED_JS"
JS_PIDS="${PIDS[-1]}"
JS_KEY="$(wait_line js-server '^hypertele: ' | awk '{print $2}')"
start js-client node js/hypertele.js client "$BOOTSTRAP" -p 0 -s "$JS_KEY"
JS_PIDS="$JS_PIDS ${PIDS[-1]}"
JS_PORT="$(wait_line js-client 'Server ready' | sed 's/.*://')"

# CPU time (user + system, in clock ticks) of the given pids so far.
ticks() {
  local total=0 pid f
  for pid in "$@"; do
    f="$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null || echo "0 0")"
    total=$((total + ${f% *} + ${f#* }))
  done
  echo "$total"
}
HZ="$(getconf CLK_TCK)"

run() { # PORT BYTES PIDS -> "MB/s CPU-seconds-per-GB"
  local out before after perf_pids=() pid
  if [ "$2" -le 0 ]; then echo "0 0"; return; fi
  if [ -n "${PERF_DIR:-}" ] && [ "$3" = "$RUST_PIDS" ]; then
    mkdir -p "$PERF_DIR"
    for pid in $3; do
      # shellcheck disable=SC2086
      perf record ${PERF_ARGS:--g} -p "$pid" -o "$PERF_DIR/$(tr -d '\0' < "/proc/$pid/comm").data" \
        > "$PERF_DIR/perf-$pid.log" 2>&1 &
      perf_pids+=("$!")
    done
    sleep 0.5
  fi
  # shellcheck disable=SC2086
  before="$(ticks $3)"
  out="$(cd "$NODE_DIR" && timeout 600 "${TCP_BENCH[@]}" source "$1" "$2")" || { echo "transfer failed: $out" >&2; echo "0 0"; return; }
  # shellcheck disable=SC2086
  after="$(ticks $3)"
  for pid in "${perf_pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  echo "$out" >&2
  awk -v m="$(sed 's/.*"mbps":\([0-9.]*\).*/\1/' <<<"$out")" -v t="$((after - before))" -v hz="$HZ" -v b="$2" \
    'BEGIN { cpu = t / hz / (b / 1e9); printf "%s %.2f\n", m, cpu; printf "   cpu %.2f s per GB (client + server)\n", cpu > "/dev/stderr" }'
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }'; }

echo "load before: $(uptime)"
best_rust=0 best_js=0 cpu_rust=0 cpu_js=0
lowest() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a == 0 || (b > 0 && b < a)) ? b : a) }'; }
for round in $(seq 1 "$REPEAT"); do
  echo "== round $round: rust pair, $RUST_BYTES bytes" >&2
  read -r mbps cpu <<<"$(run "$RUST_PORT" "$RUST_BYTES" "$RUST_PIDS")"
  best_rust="$(best "$best_rust" "$mbps")"; cpu_rust="$(lowest "$cpu_rust" "$cpu")"
  echo "== round $round: js pair, $JS_BYTES bytes" >&2
  read -r mbps cpu <<<"$(run "$JS_PORT" "$JS_BYTES" "$JS_PIDS")"
  best_js="$(best "$best_js" "$mbps")"; cpu_js="$(lowest "$cpu_js" "$cpu")"
done

echo "load after: $(uptime)"
printf 'rust pair: %.1f MB/s, %.2f CPU-s/GB\njs pair:   %.1f MB/s, %.2f CPU-s/GB\n' "$best_rust" "$cpu_rust" "$best_js" "$cpu_js"
awk -v r="$best_rust" -v j="$best_js" -v cr="$cpu_rust" -v cj="$cpu_js" \
  'BEGIN { if (j > 0) printf "ratio rust/js = %.2f (throughput), %.2f (CPU per byte, js/rust)\n", r / j, (cr > 0 ? cj / cr : 0) }'
