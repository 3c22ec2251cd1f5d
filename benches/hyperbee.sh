#!/usr/bin/env bash
# Hyperbee throughput, Rust vs JS hyperbee 2.27.3, in the same run: N single puts (one append each), N puts in
# batches of 1000, N gets of random existing keys, 64-byte values, cores on disk with JS's durability (no fsync).
# Usage: benches/hyperbee.sh [N]     (default 10000). BENCH_DIR sets where the cores are written.
set -euo pipefail

N=${1:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/hyperbee-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p holepunch --example hyperbee_bench
RUST_BIN="$ROOT/target/release/examples/hyperbee_bench"

# Interleaved rounds so that load from other processes hits both alike.
for round in 1 2; do
  rm -rf "$WORK"/*
  mkdir -p "$WORK/rust" "$WORK/js"
  "$RUST_BIN" "$WORK/rust" "$N"
  (cd "$ROOT/tests/interop" && node js/bench-hyperbee.js "$WORK/js" "$N")
done
