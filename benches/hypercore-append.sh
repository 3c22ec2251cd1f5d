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

rust_line=$("$RUST_BIN" --dir "$WORK/rust" --batches "$BATCHES" --batch "$BATCH" --size "$SIZE")
js_line=$(cd "$ROOT/tests/interop" && node js/bench-hypercore-append.js "$WORK/js" "$BATCHES" "$BATCH" "$SIZE")
echo "$rust_line"
echo "$js_line"

rate() { sed -n 's/.*appends_per_sec=\([0-9.]*\).*/\1/p' <<<"$1"; }
awk -v r="$(rate "$rust_line")" -v j="$(rate "$js_line")" \
  'BEGIN { printf "ratio rust/js = %.2f\n", r / j }'
