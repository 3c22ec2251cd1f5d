#!/usr/bin/env bash
# Autobase apply throughput, Rust vs JS autobase 7.28.1 in the same run (issue #16): three writers (two
# indexers, one not) append N small autobase-kv puts in atomic batches of 100, replicating in one process,
# until every view holds the N keys, the three agree on the heads and each view is indexed (JS: signed) to its
# length. Rust: crates/cores/examples/autobase_bench.rs, JS: tests/interop/js/bench-autobase.js. Each prints one
# JSON line; the last line is the ratio of the medians of totalMs.
# Usage: benches/autobase.sh [N] [ROUNDS]     (default 100000 puts, 2 rounds). BENCH_DIR: where stores go.
set -euo pipefail

N=${1:-100000}
ROUNDS=${2:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/autobase-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p holepunch-cores --example autobase_bench
RUST_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/autobase_bench"

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
rust=()
js=()
# Interleaved rounds so that load from other processes hits both alike.
for round in $(seq 1 "$ROUNDS"); do
  rm -rf "${WORK:?}"/*
  mkdir -p "$WORK/rust" "$WORK/js"
  out=$("$RUST_BIN" "$N" "$WORK/rust")
  echo "rust $out"
  rust+=("$(echo "$out" | sed -E 's/.*"totalMs":([0-9]+).*/\1/')")
  out=$(cd "$ROOT/tests/interop" && node js/bench-autobase.js "$N" "$WORK/js")
  echo "js   $out"
  js+=("$(echo "$out" | sed -E 's/.*"totalMs":([0-9]+).*/\1/')")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
r=$(median "${rust[@]}")
j=$(median "${js[@]}")
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v r="$r" -v j="$j" 'BEGIN { printf "autobase apply, %d puts: rust %.1f s, js %.1f s, rust is %.1fx faster\n", '"$N"', r/1000, j/1000, j/r }'
