#!/usr/bin/env bash
# "Diffable" drives (issue #15 part 3): content-defined chunking + block maps, measured with the release build of
# crates/holepunch/examples/drives_cdc_bench.rs.
#
#   benches/drives-cdc.sh [SIZE_MIB] [CHANGE_MIB]      default 256 and 1
#   BENCH_DIR=/some/disk                               where the stores are written (default $TMPDIR or /tmp)
#
# Prints: import speed of new data with and without chunking (best of 5 each, interleaved, wall and CPU time, folder -> hyperdrive
# through the mirror as `drives mirror` does); for CHANGE_MIB rewritten in the middle and then CHANGE_MIB
# inserted at the start: the bytes each re-import appends to the blobs core, and the bytes a replica that had
# the previous version downloads (over loopback TCP + secret-stream, its copy checked by BLAKE2b); and whether a
# JS hyperdrive 13.3.4 reader (tests/interop/js/hyperdrive_peer.js) reads the last version byte-exact.
# Targets (issue #15): appended < 8 MiB and downloaded < 8 MiB for both, chunked import >= 0.80 of plain.
set -euo pipefail

SIZE_MIB="${1:-256}"
CHANGE_MIB="${2:-1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/drives-cdc.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p holepunch --example drives_cdc_bench
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/drives_cdc_bench"

PEER=""
if command -v node >/dev/null && [ -d "$ROOT/tests/interop/node_modules/hyperdrive" ]; then
  PEER="$ROOT/tests/interop/js/hyperdrive_peer.js"
else
  echo "(no node or tests/interop/node_modules: the JS reader check is skipped; npm install in tests/interop)" >&2
fi

echo "load: $(uptime | sed 's/.*load average: //')"
"$BIN" "$WORK" "$SIZE_MIB" "$CHANGE_MIB" $PEER | tee "$WORK/out"

fig() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/out"; }
ok=1
for k in middle_change_appended_mib start_insert_appended_mib middle_change_replica_download_mib start_insert_replica_download_mib; do
  awk -v v="$(fig "$k")" 'BEGIN { exit !(v < 8) }' || { echo "MISS: $k >= 8 MiB"; ok=0; }
done
# On a loaded machine wall time swings 3x between runs; CPU time (user + sys of the import) is the steadier figure.
awk -v v="$(fig import_chunked_vs_plain_cpu)" 'BEGIN { exit !(v >= 0.8) }' || { echo "MISS: chunked import CPU time > 1.25x plain"; ok=0; }
if [ -n "$PEER" ] && [ "$(fig js_reader_byte_exact)" != "true" ]; then echo "MISS: JS reader"; ok=0; fi
echo "load: $(uptime | sed 's/.*load average: //')"
[ "$ok" = 1 ] && echo "all targets met" || { echo "some targets missed"; exit 1; }
