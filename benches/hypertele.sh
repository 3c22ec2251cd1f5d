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
#
# MODE=socat: the same transfer with a user's endpoints instead of the load generator: `socat` sends SIZE
#   bytes (from `head -c SIZE /dev/zero`) into the client's port and a socat-served service behind the server
#   counts them (`socat TCP-LISTEN:...,fork SYSTEM:'wc -c'`) and answers the count. Prints MB/s per pair and
#   the CPU seconds per GiB of each side (client, server) and of the pair.
# MODE=burst: CONNS (default 200) TCP connections opened at once through each pair, each sending BYTES
#   (default 64K) that an echo service behind the server sends back (tcp-bench burst: byte-exact or it
#   fails). Prints the wall time of the whole burst (first connect to last byte back) per pair and the ratio,
#   best of REPEAT (each round has fresh pairs' connections; the DHT nodes stay up).
#   CONNS=200 BYTES=64K MODE=burst REPEAT=3 benches/hypertele.sh
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
MODE="${MODE:-throughput}"
case "$MODE" in throughput|socat|burst) ;; *) echo "MODE must be throughput, socat or burst" >&2; exit 2 ;; esac
CONNS="${CONNS:-200}"
BURST_BYTES="$(to_bytes "${BYTES:-64K}")"
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

case "$MODE" in
  throughput)
    start sink "${TCP_BENCH[@]}" sink
    SINK_PORT="$(wait_line sink '^[0-9]')" ;;
  burst)
    start sink "$ROOT/target/release/examples/tcp-bench" echo
    SINK_PORT="$(wait_line sink '^[0-9]')" ;;
  socat)
    command -v socat > /dev/null || { echo "MODE=socat needs socat" >&2; exit 2; }
    SINK_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    start sink socat -b 262144 "TCP-LISTEN:$SINK_PORT,bind=127.0.0.1,reuseaddr,fork" SYSTEM:'wc -c'
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null && break
      sleep 0.1
    done ;;
esac

SEED_RUST="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SEED_JS="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

start rust-server "$RUST_SERVER" --bootstrap "$BOOTSTRAP" -l "$SINK_PORT" --seed "$SEED_RUST"
RUST_PIDS="${PIDS[-1]}"
RUST_SERVER_PID="${PIDS[-1]}"
RUST_KEY="$(wait_line rust-server '^hypertele: ' | awk '{print $2}')"
start rust-client "$RUST_CLIENT" --bootstrap "$BOOTSTRAP" -p 0 -s "$RUST_KEY"
RUST_PIDS="$RUST_PIDS ${PIDS[-1]}"
RUST_CLIENT_PID="${PIDS[-1]}"
RUST_PORT="$(wait_line rust-client 'Server ready' | sed 's/.*://')"

start js-server node js/hypertele.js server "$BOOTSTRAP" -l "$SINK_PORT" --seed "$SEED_JS"
JS_PIDS="${PIDS[-1]}"
JS_SERVER_PID="${PIDS[-1]}"
JS_KEY="$(wait_line js-server '^hypertele: ' | awk '{print $2}')"
start js-client node js/hypertele.js client "$BOOTSTRAP" -p 0 -s "$JS_KEY"
JS_PIDS="$JS_PIDS ${PIDS[-1]}"
JS_CLIENT_PID="${PIDS[-1]}"
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
# socat as the user's client: SIZE bytes in, the service's count back. -> "MB/s client-CPU-s/GiB server-CPU-s/GiB"
run_socat() { # PORT BYTES "CLIENT_PID SERVER_PID"
  local start end out before_c before_s after_c after_s client server
  read -r client server <<<"$3"
  if [ "$2" -le 0 ]; then echo "0 0 0"; return; fi
  before_c="$(ticks "$client")"; before_s="$(ticks "$server")"
  start="$(date +%s.%N)"
  out="$(head -c "$2" /dev/zero | timeout 600 socat -b 262144 -t 60 - "TCP:127.0.0.1:$1")" || true
  end="$(date +%s.%N)"
  after_c="$(ticks "$client")"; after_s="$(ticks "$server")"
  if [ "$(tr -d ' \n' <<<"$out")" != "$2" ]; then echo "transfer failed: the service counted '$out' of $2 bytes" >&2; echo "0 0 0"; return; fi
  awk -v s="$start" -v e="$end" -v b="$2" -v c="$((after_c - before_c))" -v v="$((after_s - before_s))" -v hz="$HZ" \
    'BEGIN { gib = b / 1073741824; printf "%.1f %.2f %.2f\n", b / (e - s) / 1e6, c / hz / gib, v / hz / gib;
             printf "   %.1f MB/s, cpu %.2f s/GiB client, %.2f s/GiB server\n", b / (e - s) / 1e6, c / hz / gib, v / hz / gib > "/dev/stderr" }'
}

# A burst of CONNS connections through a pair -> seconds (0 when any failed).
run_burst() { # PORT
  local out
  out="$(timeout 600 "$ROOT/target/release/examples/tcp-bench" burst "$1" "$CONNS" "$BURST_BYTES")" || { echo "burst failed: $out" >&2; echo 0; return; }
  echo "$out" >&2
  sed 's/.*"seconds":\([0-9.]*\).*/\1/' <<<"$out"
}

best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }'; }

lowest() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a == 0 || (b > 0 && b < a)) ? b : a) }'; }

if [ "$MODE" = burst ]; then
  echo "load before: $(uptime)"
  t_rust=0 t_js=0
  for round in $(seq 1 "$REPEAT"); do
    echo "== round $round: rust pair, $CONNS connections of $BURST_BYTES bytes" >&2
    t_rust="$(lowest "$t_rust" "$(run_burst "$RUST_PORT")")"
    echo "== round $round: js pair, $CONNS connections of $BURST_BYTES bytes" >&2
    t_js="$(lowest "$t_js" "$(run_burst "$JS_PORT")")"
  done
  echo "load after: $(uptime)"
  printf 'rust pair: %s connections of %s bytes in %.2f s\njs pair:   %s connections of %s bytes in %.2f s\n' \
    "$CONNS" "$BURST_BYTES" "$t_rust" "$CONNS" "$BURST_BYTES" "$t_js"
  awk -v r="$t_rust" -v j="$t_js" 'BEGIN { if (r > 0) printf "ratio js/rust = %.2f (time)\n", j / r }'
  exit 0
fi

if [ "$MODE" = socat ]; then
  echo "load before: $(uptime)"
  best_rust=0 best_js=0 rc=0 rs=0 jc=0 js=0
  for round in $(seq 1 "$REPEAT"); do
    echo "== round $round: rust pair, socat, $RUST_BYTES bytes" >&2
    read -r mbps c v <<<"$(run_socat "$RUST_PORT" "$RUST_BYTES" "$RUST_CLIENT_PID $RUST_SERVER_PID")"
    best_rust="$(best "$best_rust" "$mbps")"; rc="$(lowest "$rc" "$c")"; rs="$(lowest "$rs" "$v")"
    echo "== round $round: js pair, socat, $JS_BYTES bytes" >&2
    read -r mbps c v <<<"$(run_socat "$JS_PORT" "$JS_BYTES" "$JS_CLIENT_PID $JS_SERVER_PID")"
    best_js="$(best "$best_js" "$mbps")"; jc="$(lowest "$jc" "$c")"; js="$(lowest "$js" "$v")"
  done
  echo "load after: $(uptime)"
  printf 'rust pair (socat): %.1f MB/s, CPU s/GiB: client %.2f, server %.2f, pair %.2f\n' "$best_rust" "$rc" "$rs" "$(awk -v a="$rc" -v b="$rs" 'BEGIN { print a + b }')"
  printf 'js pair (socat):   %.1f MB/s, CPU s/GiB: client %.2f, server %.2f, pair %.2f\n' "$best_js" "$jc" "$js" "$(awk -v a="$jc" -v b="$js" 'BEGIN { print a + b }')"
  awk -v r="$best_rust" -v j="$best_js" -v cr="$(awk -v a="$rc" -v b="$rs" 'BEGIN { print a + b }')" -v cj="$(awk -v a="$jc" -v b="$js" 'BEGIN { print a + b }')" \
    'BEGIN { if (j > 0) printf "ratio rust/js = %.2f (throughput), %.2f (CPU per byte, js/rust)\n", r / j, (cr > 0 ? cj / cr : 0) }'
  exit 0
fi

echo "load before: $(uptime)"
best_rust=0 best_js=0 cpu_rust=0 cpu_js=0
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
