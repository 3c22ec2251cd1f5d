#!/usr/bin/env bash
# Autobase linearizer (consensus + ordering) throughput, Rust vs JS autobase 7.28.1 in the same run: 6 writers
# (3 indexers), ROUNDS rounds of one concurrent node per writer, an update per round (see
# crates/holepunch/examples/autobase_linearizer_bench.rs). Both print the nodes indexed and the tip left, which
# must agree. Usage: benches/autobase-linearizer.sh [ROUNDS]     (default 3000)
set -euo pipefail

ROUNDS=${1:-3000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p holepunch --example autobase_linearizer_bench
RUST_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/autobase_linearizer_bench"

# Interleaved rounds so that load from other processes hits both alike.
for round in 1 2 3; do
  "$RUST_BIN" "$ROUNDS"
  (cd "$ROOT/tests/interop" && node js/bench-autobase-linearizer.js "$ROUNDS")
done
