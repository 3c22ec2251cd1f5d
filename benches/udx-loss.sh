#!/usr/bin/env bash
# UDX throughput under random per-datagram loss: the Rust udxcat pair and the udx-native (node,
# tests/interop/js/udxcat.js) pair, one way, between two network namespaces joined by a veth pair, with
# `iptables -m statistic --mode random --probability P -j DROP` on inbound UDP in both namespaces (so data and
# acks are both lost). This kernel has no netem; the loss is all there is (no added delay).
#
#   benches/udx-loss.sh                    (root) 0%, 1%, 5%, 10% loss, 3 runs of 512 MiB per pair
#   SIZE=64M RUNS=5 LOSSES="0 0.05" benches/udx-loss.sh
#   NICE=-10 benches/udx-loss.sh           both pairs at a higher priority (less scheduler noise on a busy machine)
#   UDXCAT=/path/to/udxcat benches/udx-loss.sh   that Rust binary instead of building this tree's (e.g. an older build)
#   TRACE=1 benches/udx-loss.sh            keeps each Rust sender's 100 ms counter trace (UDXCAT_TRACE) and the
#                                          final counters of both ends (UDXCAT_STATS) in $KEEP (printed)
#
# Datagrams are split on the link: GSO is capped at one segment per packet on both veths (`ip link set ...
# gso_max_segs 1`, plus `ethtool -K ... gso off tso off gro off` when ethtool exists), so a GSO batch is never
# dropped as one unit; the lossless run checks that no inbound UDP packet exceeds the MTU.
#
# One run = from starting the sender to the receiver having every byte and its stream closed (verified with
# cmp): its process exit for udx-native, the close it prints for Rust (which then lingers, see udxcat). The pairs
# alternate (rust, node, rust, node, ...) so machine load hits both alike. Prints per loss rate: Rust MB/s
# (min/median/max), udx-native MB/s (min/median/max), the ratio of the medians and the worst per-run ratio
# (each Rust run over the udx-native run next to it), and Rust's median as a percentage of its own lossless median.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# 512 MiB: a Rust run then lasts about a second. With 128 MiB (the default until 2026-12-07) it lasted a quarter
# of one, mostly BBR's startup and the scheduler's moods on 2 shared cores: on a quiet machine the same build's
# per-run ratios spread over 3.5-5.8x at 128 MiB against 4.3-5.3x at 512 MiB, with no stall in any trace.
SIZE_ARG="${SIZE:-512M}"
RUNS="${RUNS:-3}"
LOSSES="${LOSSES:-0 0.01 0.05 0.10}"
LIMIT="${LIMIT:-120}" # seconds allowed per transfer
# NICE=-10 runs both pairs at a higher priority: on a machine shared with builds, this measures the transports
# rather than the scheduler. Both pairs get the same treatment.
NICE="${NICE:-}"
TAG="udxl$$"
NS_A="${TAG}a"
NS_B="${TAG}b"
ADDR_A=10.213.7.1
ADDR_B=10.213.7.2
PORT_A=4001
PORT_B=4002

if [ "$(id -u)" != 0 ]; then
  echo "error: needs root (network namespaces, iptables)" >&2
  exit 1
fi
for tool in ip iptables node bc; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done

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
WORK="$(mktemp -d "$WORK_BASE/udx-loss.XXXXXX")"
KEEP=""
if [ -n "${TRACE:-}" ]; then KEEP="$(mktemp -d "${TMPDIR:-/tmp}/udx-loss-trace.XXXXXX")"; fi

cleanup() {
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== namespaces $NS_A ($ADDR_A) <-veth-> $NS_B ($ADDR_B)" >&2
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add "${TAG}x" netns "$NS_A" type veth peer name "${TAG}y" netns "$NS_B"
ip -n "$NS_A" addr add "$ADDR_A/24" dev "${TAG}x"
ip -n "$NS_B" addr add "$ADDR_B/24" dev "${TAG}y"
for ns_dev in "$NS_A ${TAG}x" "$NS_B ${TAG}y"; do
  read -r ns dev <<< "$ns_dev"
  ip -n "$ns" link set dev "$dev" gso_max_segs 1
  if command -v ethtool >/dev/null; then
    ip netns exec "$ns" ethtool -K "$dev" gso off tso off gro off 2>/dev/null || true
  fi
  ip -n "$ns" link set dev "$dev" up
  ip -n "$ns" link set dev lo up
done

set_loss() { # P: drop inbound UDP with probability P in both namespaces; a counting rule first
  local p="$1" ns
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" iptables -F INPUT
    ip netns exec "$ns" iptables -Z INPUT
    ip netns exec "$ns" iptables -A INPUT -p udp
    if [ "$(echo "$p > 0" | bc -l)" = 1 ]; then
      ip netns exec "$ns" iptables -A INPUT -p udp -m statistic --mode random --probability "$p" -j DROP
    fi
  done
}

inbound_udp() { # NS: "packets bytes" counted by the first INPUT rule
  ip netns exec "$1" iptables -L INPUT -v -n -x | awk 'NR == 3 { print $1, $2; exit }'
}

echo "== generating $BYTES random bytes" >&2
head -c "$BYTES" /dev/urandom > "$WORK/in"

wait_for_bound() { # FILE WHAT
  local waited=0
  until grep -q "bound" "$1" 2>/dev/null; do
    sleep 0.005; waited=$((waited + 1))
    if [ "$waited" -gt 6000 ]; then echo "error: $2 did not start" >&2; cat "$1" >&2; exit 1; fi
  done
}

# run_pair NAME LABEL CMD...: one transfer A -> B; prints the seconds
run_pair() {
  local name="$1" label="$2"; shift 2
  local start end closed_at rc_a rc_b env=()
  # The Rust receiver lingers after closing to re-ack a retransmission whose ack was lost (else the sender
  # retransmits into a closed port until it times out); its run ends when it closed (printed).
  if [ "$name" = rust ]; then env=(env UDXCAT_LINGER=1 ${KEEP:+UDXCAT_STATS=1 UDXCAT_TRACE=1}); fi
  rm -f "$WORK/out" "$WORK/err_a" "$WORK/err_b" "$WORK/rx_stdin"
  # The receiver sends nothing but its END, read from a FIFO we close once the sender is bound.
  mkfifo "$WORK/rx_stdin"
  (cd "$NODE_DIR" && exec ip netns exec "$NS_B" ${NICE:+nice -n "$NICE"} ${env[@]+"${env[@]}"} timeout "$LIMIT" "$@" \
      --bind "$ADDR_B:$PORT_B" --connect "$ADDR_A:$PORT_A" --id 2 --remote-id 1 \
      < "$WORK/rx_stdin" > "$WORK/out" 2> "$WORK/err_b") &
  local pid_b=$!
  exec 7> "$WORK/rx_stdin"
  wait_for_bound "$WORK/err_b" "$name receiver"
  if [ "$name" = rust ]; then env=(env ${KEEP:+UDXCAT_STATS=1 UDXCAT_TRACE=1}); fi
  start="$(date +%s.%N)"
  (cd "$NODE_DIR" && exec ip netns exec "$NS_A" ${NICE:+nice -n "$NICE"} ${env[@]+"${env[@]}"} timeout "$LIMIT" "$@" \
      --bind "$ADDR_A:$PORT_A" --connect "$ADDR_B:$PORT_B" --id 1 --remote-id 2 \
      < "$WORK/in" > /dev/null 2> "$WORK/err_a" 7>&-) &
  local pid_a=$!
  wait_for_bound "$WORK/err_a" "$name sender"
  exec 7>&-
  rc_b=0; wait "$pid_b" || rc_b=$?
  end="$(date +%s.%N)"
  closed_at="$(sed -n 's/^udxcat: closed at //p' "$WORK/err_b")"
  [ -n "$closed_at" ] && end="$closed_at"
  rc_a=0; wait "$pid_a" || rc_a=$?
  if [ -n "$KEEP" ]; then
    cp "$WORK/err_a" "$KEEP/$label.sender.log"
    cp "$WORK/err_b" "$KEEP/$label.receiver.log"
  fi
  if [ "$rc_a" != 0 ] || [ "$rc_b" != 0 ]; then
    echo "error: $name failed (sender rc=$rc_a, receiver rc=$rc_b)" >&2
    cat "$WORK/err_a" "$WORK/err_b" >&2
    exit 1
  fi
  if ! cmp -s "$WORK/in" "$WORK/out"; then
    echo "error: $name: received bytes differ from the sent ones ($(stat -c %s "$WORK/out") of $BYTES bytes)" >&2
    exit 1
  fi
  echo "$end - $start" | bc -l
}

stats() { # numbers...: "min median max"
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f %.1f %.1f", v[1], m, v[NR] }'
}

echo "== load before: $(uptime)" >&2
declare -A ROWS
LOSSLESS=""
for p in $LOSSES; do
  set_loss "$p"
  rust=() node=() worst=""
  for i in $(seq 1 "$RUNS"); do
    secs="$(run_pair rust "rust-p$p-$i" "$RUST_CAT")"
    r="$(echo "$BYTES / $secs / 1000000" | bc -l)"
    if [ "$(echo "$p == 0" | bc -l)" = 1 ] && [ "$i" = 1 ]; then
      # Datagrams must reach the receiver one by one: no inbound UDP packet larger than the link MTU.
      read -r pkts bytes <<< "$(inbound_udp "$NS_B")"
      if [ "${pkts:-0}" -gt 0 ] && [ "$((bytes / pkts))" -gt 1500 ]; then
        echo "error: inbound UDP packets average $((bytes / pkts)) bytes: GSO batches are not split" >&2
        exit 1
      fi
      echo "   check: $pkts inbound UDP packets, $((bytes / pkts)) bytes on average (datagrams split)" >&2
    fi
    secs="$(run_pair node "node-p$p-$i" node js/udxcat.js)"
    n="$(echo "$BYTES / $secs / 1000000" | bc -l)"
    printf '   loss %-5s run %d: rust %7.1f MB/s  udx-native %7.1f MB/s\n' "$p" "$i" "$r" "$n" >&2
    rust+=("$r"); node+=("$n")
    ratio="$(echo "$r / $n" | bc -l)"
    if [ -z "$worst" ] || [ "$(echo "$ratio < $worst" | bc -l)" = 1 ]; then worst="$ratio"; fi
  done
  read -r rmin rmed rmax <<< "$(stats "${rust[@]}")"
  read -r nmin nmed nmax <<< "$(stats "${node[@]}")"
  if [ "$(echo "$p == 0" | bc -l)" = 1 ]; then LOSSLESS="$rmed"; fi
  own="-"
  if [ -n "$LOSSLESS" ]; then own="$(printf '%.0f%%' "$(echo "100 * $rmed / $LOSSLESS" | bc -l)")"; fi
  ROWS[$p]="$(printf '%-6s %7.1f %7.1f %7.1f   %7.1f %7.1f %7.1f   %6.1fx %6.1fx   %s' "$p" \
    "$rmin" "$rmed" "$rmax" "$nmin" "$nmed" "$nmax" "$(echo "$rmed / $nmed" | bc -l)" "$worst" "$own")"
done

echo
echo "UDX one way, $BYTES bytes, $RUNS runs per pair, veth between two namespaces, random inbound UDP drop each way${NICE:+, nice $NICE}"
echo "load: $(uptime)"
printf '%-6s %-25s   %-25s   %-7s %-7s   %s\n' "loss" "rust MB/s min/med/max" "udx-native MB/s min/med/max" \
  "ratio" "worst" "rust vs own lossless"
for p in $LOSSES; do echo "${ROWS[$p]}"; done
[ -n "$KEEP" ] && echo "traces: $KEEP"
exit 0
