#!/usr/bin/env bash
# drives: import (folder -> hyperdrive) and download (hyperdrive -> folder from a seeder over a local testnet),
# the Rust `drives` binary (target/release/drives) against the JS libraries (hyperdrive 13 + corestore 7 +
# localdrive + mirror-drive + hyperswarm, tests/interop/js/drives_peer.js), in the same run on the same data.
#
#   benches/drives.sh            FILES=2000 FILE_KB=50 BIG_MB=200 by default
#   FILES=200 BIG_MB=20          a smaller run
#   KEEP=1                       keeps the work directory
#   SKIP_JS=1                    only the Rust side (profiling)
#   PERF=1                       perf record (flat) of the Rust downloader and seeder: $WORK/perf.{dl,seed}
#   PERF=dwarf                   the downloader with call graphs
#   PERF=strace                  syscall counts of the downloader ($WORK/strace.dl)
#   RS_LOG=filter                RUST_LOG for the Rust downloader (its stderr goes to $WORK/rs_dl_err)
#
# Import: JS times `localdrive.mirror(drive).done()` inside the process (drives_peer.js seed reports importMs);
# Rust times the whole `drives mirror FOLDER KEY` process (after `drives touch`), start-up included. The CPU
# time of each import (user + sys) is printed too: steadier than wall time on a loaded machine.
# Download: JS seeder + JS downloader (`drives_peer.js mirror`, timed from joining the swarm to the last file
# written), then Rust seeder (`drives seed`) + Rust downloader (`drives mirror KEY FOLDER`, the whole process
# timed: DHT bootstrap, lookup, connect, replicate, write). Each copy is compared with the source (diff -r).
# "dl cpu" is the user+sys CPU time of each downloader process (steadier than wall time on a loaded machine).
# Issue #6 targets: import >= 5x and download >= 5x faster than JS (JS here: ~8.7 s and ~14.5 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILES="${FILES:-2000}"
FILE_KB="${FILE_KB:-50}"
BIG_MB="${BIG_MB:-200}"
NODE_DIR="$ROOT/tests/interop"

echo "== building drives (release)" >&2
(cd "$ROOT" && cargo build --release -q -p drives)
DRIVES="$ROOT/target/release/drives"

WORK_BASE="${TMPDIR:-/tmp}"
WORK="$(mktemp -d "$WORK_BASE/drives-bench.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== data: $FILES files of ${FILE_KB} kB + one of ${BIG_MB} MB" >&2
mkdir -p "$WORK/data/small"
head -c $((FILE_KB * 1000)) /dev/urandom > "$WORK/seedfile"
for i in $(seq 1 "$FILES"); do
  d="$WORK/data/small/$((i % 40))"
  mkdir -p "$d"
  # Distinct content per file: the index in front of the shared random bytes.
  { printf '%08d' "$i"; head -c $((FILE_KB * 1000 - 8)) "$WORK/seedfile"; } > "$d/f$i.bin"
done
head -c $((BIG_MB * 1000 * 1000)) /dev/urandom > "$WORK/data/big.bin"

now_ms() { date +%s%3N; }
cpu_ms() { awk '{ printf "%d", ($1 + $2) * 1000 }' "$1"; } # FILE written by /usr/bin/time -f '%U %S': user+sys ms
wait_line() { # FILE PATTERN: wait (at most 600 s) for a line matching PATTERN in FILE
  local n=0
  until grep -q "$2" "$1" 2>/dev/null; do sleep 0.05; n=$((n + 1)); [ "$n" -lt 12000 ] || { echo "timeout waiting for $2 in $1" >&2; cat "$1" >&2; exit 1; }; done
  grep -m1 "$2" "$1"
}

echo "== testnet (tests/interop/js/testnet.js 5)" >&2
mkfifo "$WORK/testnet_in"
(cd "$NODE_DIR" && exec node js/testnet.js 5 < "$WORK/testnet_in" > "$WORK/testnet_out" 2> "$WORK/testnet_err") &
PIDS+=($!)
exec 8> "$WORK/testnet_in"
BOOT="$(wait_line "$WORK/testnet_out" bootstrap | sed -E 's/.*"bootstrap":\["([^"]+)".*/\1/')"
echo "bootstrap $BOOT" >&2

JS_IMPORT=0
JS_DL=0
JS_CPU=-
JS_IMPORT_CPU=-
if [ -z "${SKIP_JS:-}" ]; then
echo "== JS import + seed" >&2
mkfifo "$WORK/js_seed_in"
(cd "$NODE_DIR" && exec node js/drives_peer.js "$BOOT" seed "$WORK/js-store" "$WORK/data" < "$WORK/js_seed_in" > "$WORK/js_seed_out" 2> "$WORK/js_seed_err") &
PIDS+=($!)
exec 9> "$WORK/js_seed_in"
JS_LINE="$(wait_line "$WORK/js_seed_out" importMs)"
JS_KEY="$(echo "$JS_LINE" | sed -E 's/.*"key":"([^"]+)".*/\1/')"
JS_IMPORT="$(echo "$JS_LINE" | sed -E 's/.*"importMs":([0-9]+).*/\1/')"
JS_IMPORT_CPU="$(echo "$JS_LINE" | sed -E 's/.*"importCpuMs":([0-9]+).*/\1/')"

echo "== JS download" >&2
JS_DL_LINE="$(cd "$NODE_DIR" && /usr/bin/time -f '%U %S' -o "$WORK/js_dl_time" node js/drives_peer.js "$BOOT" mirror "$JS_KEY" "$WORK/js-store2" "$WORK/js-out")"
JS_DL="$(echo "$JS_DL_LINE" | sed -E 's/.*"ms":([0-9]+).*/\1/')"
JS_CPU="$(cpu_ms "$WORK/js_dl_time")"
diff -r "$WORK/data" "$WORK/js-out" > /dev/null
exec 9>&-
# Deleted at the end: thousands of just-deleted inodes make ext4's inode allocation slow for the next
# process creating files (find_inode_bit -> recently_deleted), which would tax the Rust run.
fi

echo "== Rust import" >&2
KEY="$("$DRIVES" touch --storage "$WORK/rs" | sed -n 's/^New drive: //p')"
T0=$(now_ms)
/usr/bin/time -f '%U %S' -o "$WORK/rs_import_time" "$DRIVES" mirror "$WORK/data" "$KEY" --storage "$WORK/rs" > /dev/null
RS_IMPORT=$(( $(now_ms) - T0 ))
RS_IMPORT_CPU="$(cpu_ms "$WORK/rs_import_time")"

echo "== Rust seed + download" >&2
"$DRIVES" seed "$KEY" --storage "$WORK/rs" --bootstrap "$BOOT" > "$WORK/rs_seed_out" 2> "$WORK/rs_seed_err" &
PIDS+=($!)
wait_line "$WORK/rs_seed_out" Announced > /dev/null
T0=$(now_ms)
PERF_DL=()
if [ -n "${PERF:-}" ]; then
  perf record -q -F 999 -o "$WORK/perf.seed" -p "${PIDS[-1]}" 2> /dev/null &
  PERF_SEED=$!
  PERF_DL=(perf record -q -F 999 -o "$WORK/perf.dl")
  [ "$PERF" = dwarf ] && PERF_DL=(perf record -q -F 199 --call-graph dwarf,16384 -o "$WORK/perf.dl")
  [ "$PERF" = strace ] && PERF_DL=(strace -f -c -o "$WORK/strace.dl")
  PERF_DL+=(--)
fi
env ${RS_LOG:+RUST_LOG=$RS_LOG} /usr/bin/time -f '%U %S' -o "$WORK/rs_dl_time" \
  "${PERF_DL[@]}" "$DRIVES" mirror "$KEY" "$WORK/rs-out" --storage "$WORK/rs2" --bootstrap "$BOOT" > /dev/null 2> "$WORK/rs_dl_err"
RS_DL=$(( $(now_ms) - T0 ))
RS_CPU="$(cpu_ms "$WORK/rs_dl_time")"
if [ -n "${PERF:-}" ]; then kill -INT "$PERF_SEED"; wait "$PERF_SEED" || true; fi
diff -r "$WORK/data" "$WORK/rs-out" > /dev/null

rm -rf "$WORK/js-store" "$WORK/js-store2" "$WORK/js-out"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / (b > 0 ? b : 1) }'; }
printf '\n%-10s %10s %10s %8s\n' "" "JS (ms)" "Rust (ms)" "ratio"
printf '%-10s %10s %10s %8s\n' import "$JS_IMPORT" "$RS_IMPORT" "$(ratio "$JS_IMPORT" "$RS_IMPORT")"
printf '%-10s %10s %10s %8s\n' "import CPU" "$JS_IMPORT_CPU" "$RS_IMPORT_CPU" "$(ratio "$JS_IMPORT_CPU" "${RS_IMPORT_CPU:-0}")"
printf '%-10s %10s %10s %8s\n' download "$JS_DL" "$RS_DL" "$(ratio "$JS_DL" "$RS_DL")"
printf '%-10s %10s %10s %8s\n' "dl CPU" "$JS_CPU" "$RS_CPU" "$(ratio "$JS_CPU" "${RS_CPU:-0}")"
echo "(CPU: user + sys ms. import: JS process.cpuUsage() around the mirror, Rust the whole process;"
echo " download: the downloader process, both)"
echo "load: $(uptime | sed 's/.*load average/load average/')"
