#!/usr/bin/env bash
# Append throughput, Rust vs JS hypercore: 1 KiB blocks appended in batches of 100 to a core on disk.
# Usage: benches/hypercore-append.sh [BATCHES] [BATCH] [SIZE]     (defaults 200 100 1024)
# BENCH_DIR sets where the cores are written (default: a temporary directory under $TMPDIR or /tmp).
set -euo pipefail

BATCHES=${1:-200}
BATCH=${2:-100}
SIZE=${3:-1024}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/hypercore-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p holepunch --example hypercore_append
RUST_BIN="$ROOT/target/release/examples/hypercore_append"

# Three rounds, interleaved, so that load from other processes hits every contender alike; the best round of
# each is reported (fsync latency on shared machines is noisy).
rate() { sed -n 's/.*appends_per_sec=\([0-9.]*\).*/\1/p' <<<"$1"; }
cpu() { sed -n 's/.*cpu_seconds=\([0-9.]*\).*/\1/p' <<<"$1"; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a ? b : a) }'; }
best_rust=0 best_nosync=0 best_js=0 cpu_nosync="" cpu_js=""
for round in 1 2 3; do
  rm -rf "$WORK"/*
  line=$("$RUST_BIN" --dir "$WORK/rust" --batches "$BATCHES" --batch "$BATCH" --size "$SIZE"); echo "$line"
  best_rust=$(awk -v a="$best_rust" -v b="$(rate "$line")" 'BEGIN { print (b > a ? b : a) }')
  line=$("$RUST_BIN" --dir "$WORK/rust-nosync" --batches "$BATCHES" --batch "$BATCH" --size "$SIZE" --no-sync); echo "$line"
  best_nosync=$(awk -v a="$best_nosync" -v b="$(rate "$line")" 'BEGIN { print (b > a ? b : a) }')
  cpu_nosync=$(min "$cpu_nosync" "$(cpu "$line")")
  line=$(cd "$ROOT/tests/interop" && node js/bench-hypercore-append.js "$WORK/js" "$BATCHES" "$BATCH" "$SIZE"); echo "$line"
  best_js=$(awk -v a="$best_js" -v b="$(rate "$line")" 'BEGIN { print (b > a ? b : a) }')
  cpu_js=$(min "$cpu_js" "$(cpu "$line")")
done

echo "best: rust (fdatasync per append) $best_rust/s, rust (no sync, JS's guarantee) $best_nosync/s, js (RocksDB, no sync) $best_js/s"
awk -v r="$best_rust" -v n="$best_nosync" -v j="$best_js" \
  'BEGIN { printf "ratio rust/js = %.2f (fdatasync per append), %.2f (same durability as JS)\n", r / j, n / j }'
awk -v r="$cpu_nosync" -v j="$cpu_js" \
  'BEGIN { printf "CPU time (user+sys, least of the rounds): rust (no sync) %.3f s, js %.3f s, ratio js/rust = %.2f\n", r, j, j / r }'
echo "load: $(uptime)"
