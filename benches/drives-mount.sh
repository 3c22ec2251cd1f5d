#!/usr/bin/env bash
# drives mount (FUSE, root): a replica reads a drive through the mount, against `drives get` of the same file, and
# the bytes a sparse read downloads, over a local testnet (tests/interop/js/testnet.js) from a `drives seed` writer.
#
#   sudo benches/drives-mount.sh      BIG_MB=1024 FILE_MB=64 by default
#   BIG_MB=256 FILE_MB=16             a smaller run
#   DRIVES=target/debug/drives        another build of drives (default: target/release/drives, built here)
#   KEEP=1                            keeps the work directory
#
# Measured, each in a fresh replica store:
# - sparse: `dd` of 1 MiB from the middle of the BIG_MB file through the mount; the store's size afterwards
#   (`du`, blocks as stored) against the 1 MiB read;
# - cold read: `cat` of the FILE_MB file through a fresh mount (every block fetched from the seeder), against
#   `drives get KEY /file.bin` (process start, DHT lookup and connection included in both: the mount's are
#   timed from its start to the end of the `cat`), then a warm `cat` (blocks already stored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIG_MB="${BIG_MB:-1024}"
FILE_MB="${FILE_MB:-64}"
NODE_DIR="$ROOT/tests/interop"
if [ -z "${DRIVES:-}" ]; then
  echo "== building drives (release)" >&2
  (cd "$ROOT" && cargo build --release -q -p drives)
  DRIVES="$ROOT/target/release/drives"
fi
DRIVES="$(cd "$(dirname "$DRIVES")" && pwd)/$(basename "$DRIVES")"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/drives-mount-bench.XXXXXX")"
PIDS=()
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do fusermount3 -uz "$m" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
cd "$WORK"

now_ms() { date +%s%3N; }
wait_line() { # FILE PATTERN: wait (at most 300 s) for a line matching PATTERN in FILE
  local n=0
  until grep -q "$2" "$1" 2>/dev/null; do sleep 0.05; n=$((n + 1)); [ "$n" -lt 6000 ] || { echo "timeout waiting for $2 in $1" >&2; cat "$1" >&2; exit 1; }; done
}

echo "== data: one file of $BIG_MB MiB, one of $FILE_MB MiB" >&2
mkdir -p data
head -c $((BIG_MB << 20)) /dev/urandom > data/big.bin
head -c $((FILE_MB << 20)) /dev/urandom > data/file.bin
KEY="$("$DRIVES" touch --storage w | sed -n 's/^New drive: //p')"
"$DRIVES" mirror ./data "$KEY" --storage w > /dev/null

echo "== testnet + seeder" >&2
mkfifo testnet_in
(cd "$NODE_DIR" && exec node js/testnet.js 5 < "$WORK/testnet_in" > "$WORK/testnet_out" 2> "$WORK/testnet_err") &
PIDS+=($!)
exec 8> testnet_in
wait_line testnet_out bootstrap
BOOT="$(sed -E 's/.*"bootstrap":\["([^"]+)".*/\1/' testnet_out | head -1)"
"$DRIVES" seed "$KEY" --storage w --bootstrap "$BOOT" > seed_out 2>&1 &
PIDS+=($!)
wait_line seed_out Announced

mount_at() { # NAME STORE: mounts in the background, waits for it; sets MPID
  mkdir -p "$1"
  "$DRIVES" mount "$KEY" "$1" --storage "$2" --bootstrap "$BOOT" > "$1.out" 2>&1 &
  MPID=$!
  PIDS+=("$MPID")
  MOUNTS+=("$WORK/$1")
  wait_line "$1.out" Mounted
}
unmount() { # NAME PID
  fusermount3 -u "$1"
  wait "$2"
}

echo "== sparse: 1 MiB from the middle of $BIG_MB MiB" >&2
mount_at m1 r1
t0=$(now_ms)
dd if=m1/big.bin of=/dev/null bs=1M skip=$((BIG_MB / 2)) count=1 status=none
t1=$(now_ms)
unmount m1 "$MPID"
SPARSE_KB=$(du -sk r1 | cut -f1)
DB_KB=$(( $(du -sk r1/corestore | cut -f1) ))

echo "== cold read of $FILE_MB MiB: through the mount, and drives get" >&2
t2=$(now_ms)
mount_at m2 r2
cat m2/file.bin > /dev/null
t3=$(now_ms)
cat m2/file.bin > /dev/null
t4=$(now_ms)
cmp m2/file.bin data/file.bin
unmount m2 "$MPID"
t5=$(now_ms)
"$DRIVES" get "$KEY" /file.bin --storage r3 --bootstrap "$BOOT" > /dev/null 2>&1
t6=$(now_ms)

mbs() { awk -v mb="$1" -v ms="$2" 'BEGIN { if (ms < 1) ms = 1; printf "%.0f MB/s", mb * 1.048576 * 1000 / ms }'; }
echo
echo "load: $(uptime | sed 's/.*load average: //')"
printf '%-44s %s\n' "sparse: 1 MiB read from $BIG_MB MiB" "$((t1 - t0)) ms; replica store after it: ${SPARSE_KB} KiB (corestore ${DB_KB} KiB)"
printf '%-44s %s\n' "mount + cold cat of $FILE_MB MiB (from start)" "$((t3 - t2)) ms ($(mbs "$FILE_MB" $((t3 - t2))))"
printf '%-44s %s\n' "warm cat of $FILE_MB MiB through the mount" "$((t4 - t3)) ms ($(mbs "$FILE_MB" $((t4 - t3))))"
printf '%-44s %s\n' "drives get of $FILE_MB MiB (from start)" "$((t6 - t5)) ms ($(mbs "$FILE_MB" $((t6 - t5))))"
