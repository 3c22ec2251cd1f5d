#!/usr/bin/env bash
# One-way UDX throughput between two processes on loopback: the Rust udxcat pair and the udx-native
# (node, tests/interop/js/udxcat.js) pair, in the same run, on the same data.
#
#   benches/udx-throughput.sh [SIZE]        SIZE in bytes or with a K/M/G suffix (default 1G)
#   REPEAT=3 benches/udx-throughput.sh      runs each pair REPEAT times and reports the best
#   UDXCAT=/path/to/udxcat benches/udx-throughput.sh   that Rust binary instead of building this tree's
#
# The sender reads a file of random bytes on stdin, the receiver writes stdout to a file; both files live in
# /dev/shm when it exists so the disk is not measured. The received bytes are compared with the sent ones.
# Prints MB/s (10^6 bytes per second, wall clock from start to both processes exiting) per pair, the ratio, and
# the peak RSS and CPU time (user + system) of each process when /usr/bin/time is available; on a shared, loaded
# machine the CPU time is the steadier figure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_ARG="${1:-${SIZE:-1G}}"
REPEAT="${REPEAT:-3}"
LIMIT="${LIMIT:-300}"   # seconds allowed per transfer
ONLY="${ONLY:-rust node}" # which pairs to run
# NICE=-10 runs both pairs at a higher priority (root only): on a machine shared with builds, this measures the
# transports rather than the scheduler. Both pairs get the same treatment.
NICE="${NICE:-}"

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
BYTES="$(to_bytes "$SIZE_ARG")"

if [ -n "${UDXCAT:-}" ]; then
  RUST_CAT="$UDXCAT"
else
  echo "== building udxcat (release)" >&2
  (cd "$ROOT" && cargo build --release -q -p holepunch --example udxcat)
  RUST_CAT="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/udxcat"
fi
NODE_DIR="$ROOT/tests/interop"
if [ ! -d "$NODE_DIR/node_modules/udx-native" ]; then
  echo "error: $NODE_DIR/node_modules is missing; run npm ci there" >&2
  exit 1
fi

WORK_BASE=/dev/shm
[ -d "$WORK_BASE" ] && [ -w "$WORK_BASE" ] || WORK_BASE="${TMPDIR:-/tmp}"
WORK="$(mktemp -d "$WORK_BASE/udx-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "== generating $BYTES random bytes" >&2
head -c "$BYTES" /dev/urandom > "$WORK/in"

TIME_V=()
if /usr/bin/time -v true >/dev/null 2>&1; then TIME_V=(/usr/bin/time -v); fi

free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rss_of() { # peak RSS in MiB from a /usr/bin/time -v log
  awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); printf "%.0f", $2 / 1024 }' "$1" 2>/dev/null || true
}

cpu_of() { # user+system CPU seconds from a /usr/bin/time -v log
  awk -F: '/User time|System time/ { gsub(/ /, "", $2); t += $2 } END { printf "%.2f", t }' "$1" 2>/dev/null || true
}

wait_for_bound() { # FILE WHAT: wait until a udxcat prints its bound address
  local waited=0
  until grep -q "bound" "$1" 2>/dev/null; do
    sleep 0.005; waited=$((waited + 1))
    if [ "$waited" -gt 6000 ]; then echo "error: $2 did not start" >&2; cat "$1" >&2; exit 1; fi
  done
}

# run_pair NAME CMD... : one transfer; prints "seconds sender_rss receiver_rss"
run_pair() {
  local name="$1"; shift
  local pa pb start end rc_a rc_b
  pa="$(free_port)"; pb="$(free_port)"
  rm -f "$WORK/out" "$WORK/time_a" "$WORK/time_b" "$WORK/err_a" "$WORK/err_b" "$WORK/rx_stdin"
  # The receiver sends nothing but its END; it reads that END from a FIFO we close once the sender is bound, so
  # the END is not lost to a closed port (which would cost a 1 s retransmission timeout at the end).
  mkfifo "$WORK/rx_stdin"
  start="$(date +%s.%N)"
  (cd "$NODE_DIR" && exec ${NICE:+nice -n "$NICE"} timeout "$LIMIT" ${TIME_V[@]+"${TIME_V[@]}" -o "$WORK/time_b"} "$@" --bind "127.0.0.1:$pb" --connect "127.0.0.1:$pa" --id 2 --remote-id 1 \
      < "$WORK/rx_stdin" > "$WORK/out" 2> "$WORK/err_b") &
  local pid_b=$!
  exec 7> "$WORK/rx_stdin"
  # Start the sender once the receiver is bound (else its first packets meet a closed port and wait an RTO).
  wait_for_bound "$WORK/err_b" "$name receiver"
  (cd "$NODE_DIR" && exec ${NICE:+nice -n "$NICE"} timeout "$LIMIT" ${TIME_V[@]+"${TIME_V[@]}" -o "$WORK/time_a"} "$@" --bind "127.0.0.1:$pa" --connect "127.0.0.1:$pb" --id 1 --remote-id 2 \
      < "$WORK/in" > /dev/null 2> "$WORK/err_a" 7>&-) &
  local pid_a=$!
  wait_for_bound "$WORK/err_a" "$name sender"
  exec 7>&-
  rc_a=0; wait "$pid_a" || rc_a=$?
  rc_b=0; wait "$pid_b" || rc_b=$?
  end="$(date +%s.%N)"
  if [ "$rc_a" != 0 ] || [ "$rc_b" != 0 ]; then
    echo "error: $name failed (sender rc=$rc_a, receiver rc=$rc_b)" >&2
    cat "$WORK/err_a" "$WORK/err_b" >&2
    exit 1
  fi
  if ! cmp -s "$WORK/in" "$WORK/out"; then
    echo "error: $name: received bytes differ from the sent ones ($(stat -c %s "$WORK/out") of $BYTES bytes)" >&2
    exit 1
  fi
  [ -n "${BENCH_DEBUG:-}" ] && grep -h "Elapsed\|Percent of CPU" "$WORK/time_a" "$WORK/time_b" >&2
  echo "$(echo "$end - $start" | bc -l) $(rss_of "$WORK/time_a") $(rss_of "$WORK/time_b") $(cpu_of "$WORK/time_a") $(cpu_of "$WORK/time_b")"
}

declare -A BEST BEST_RSS
for pair in $ONLY; do
  BEST[$pair]=""
  for i in $(seq 1 "$REPEAT"); do
    if [ "$pair" = rust ]; then
      result="$(run_pair udxcat "$RUST_CAT")"
    else
      result="$(run_pair udxcat.js node js/udxcat.js)"
    fi
    read -r secs rss_a rss_b cpu_a cpu_b <<< "$result"
    mbps="$(echo "$BYTES / $secs / 1000000" | bc -l)"
    printf '%-10s run %d: %8.1f MB/s (%.2f s)  peak RSS sender %s MiB, receiver %s MiB  CPU sender %s s, receiver %s s\n' \
      "$pair" "$i" "$mbps" "$secs" "${rss_a:-?}" "${rss_b:-?}" "${cpu_a:-?}" "${cpu_b:-?}"
    if [ -z "${BEST[$pair]}" ] || [ "$(echo "$mbps > ${BEST[$pair]}" | bc -l)" = 1 ]; then
      BEST[$pair]="$mbps"
      BEST_RSS[$pair]="sender ${rss_a:-?} MiB, receiver ${rss_b:-?} MiB; CPU sender ${cpu_a:-?} s, receiver ${cpu_b:-?} s"
    fi
  done
done

echo
if [ -n "${BEST[rust]:-}" ]; then
  printf 'udxcat    (Rust):       %8.1f MB/s  (peak RSS %s)\n' "${BEST[rust]}" "${BEST_RSS[rust]}"
fi
if [ -n "${BEST[node]:-}" ]; then
  printf 'udxcat.js (udx-native): %8.1f MB/s  (peak RSS %s)\n' "${BEST[node]}" "${BEST_RSS[node]}"
fi
if [ -n "${BEST[rust]:-}" ] && [ -n "${BEST[node]:-}" ]; then
  printf 'ratio Rust / udx-native: %.2fx  (best of %d, %d bytes one way)\n' \
    "$(echo "${BEST[rust]} / ${BEST[node]}" | bc -l)" "$REPEAT" "$BYTES"
fi
