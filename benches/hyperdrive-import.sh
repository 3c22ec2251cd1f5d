#!/usr/bin/env bash
# Hyperdrive import, Rust vs JS hyperdrive 13.3.4 in the same run: a folder of F files of 50 kB plus one file of
# B MB (random bytes) imported into a new drive on disk (JS: mirror-drive from a localdrive, what `drives mirror
# FOLDER KEY` does; Rust: crates/holepunch/examples/hyperdrive_import.rs, a drive batch with the big file streamed).
# Usage: benches/hyperdrive-import.sh [F] [B]     (default 2000 200). BENCH_DIR sets where data and stores go.
set -euo pipefail

F=${1:-2000}
B=${2:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/hyperdrive-import.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p holepunch --example hyperdrive_import
RUST_BIN="$ROOT/target/release/examples/hyperdrive_import"

mkdir -p "$WORK/src"
node -e '
const fs = require("fs"), crypto = require("crypto"), path = require("path")
const [dir, n] = process.argv.slice(1)
for (let i = 0; i < Number(n); i++) {
  const sub = path.join(dir, "d" + (i % 20))
  fs.mkdirSync(sub, { recursive: true })
  fs.writeFileSync(path.join(sub, "f" + i + ".bin"), crypto.randomBytes(50000))
}' "$WORK/src" "$F"
head -c "${B}M" /dev/urandom > "$WORK/src/big.bin"
sync

rust_best=999999
js_best=999999
for round in 1 2; do
  rm -rf "$WORK/rust" "$WORK/js"
  r=$("$RUST_BIN" "$WORK/src" "$WORK/rust")
  echo "round $round: $r"
  j=$(cd "$ROOT/tests/interop" && node js/bench-hyperdrive-import.js "$WORK/src" "$WORK/js")
  echo "round $round: $j"
  rs=$(node -e 'console.log(JSON.parse(process.argv[1]).seconds)' "$r")
  js=$(node -e 'console.log(JSON.parse(process.argv[1]).seconds)' "$j")
  rust_best=$(node -e 'console.log(Math.min(+process.argv[1], +process.argv[2]))' "$rust_best" "$rs")
  js_best=$(node -e 'console.log(Math.min(+process.argv[1], +process.argv[2]))' "$js_best" "$js")
done
node -e 'const [r, j] = process.argv.slice(1).map(Number); console.log(`import ${process.argv[3]} x 50 kB + ${process.argv[4]} MB: rust ${r.toFixed(2)} s, js ${j.toFixed(2)} s, js/rust = ${(j / r).toFixed(2)}x`)' "$rust_best" "$js_best" "$F" "$B"
