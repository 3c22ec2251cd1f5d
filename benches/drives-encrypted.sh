#!/usr/bin/env bash
# drives with and without an encryption key, same data, same binary: import of a folder (`drives mirror FOLDER
# KEY`) and export of the drive to a folder from the local store (`drives mirror KEY FOLDER`), wall and CPU
# (user+sys) time of each whole process. The difference is the block encryption (XSalsa20 per block, both
# cores) and the 8-byte header per block.
#
#   benches/drives-encrypted.sh        FILES=1000 FILE_KB=20 BIG_MB=200 by default
#   DRIVES=target/debug/drives         use this binary instead of building target/release/drives
#   KEEP=1                             keeps the work directory
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILES="${FILES:-1000}"
FILE_KB="${FILE_KB:-20}"
BIG_MB="${BIG_MB:-200}"
if [ -z "${DRIVES:-}" ]; then
  echo "== building drives (release)" >&2
  (cd "$ROOT" && cargo build --release -q -p drives)
  DRIVES="$ROOT/target/release/drives"
fi
DRIVES="$(realpath "$DRIVES")"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/drives-enc-bench.XXXXXX")"
cleanup() { if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
cd "$WORK"

echo "== data: $FILES files of ${FILE_KB} kB + one of ${BIG_MB} MB" >&2
mkdir -p data/small
for i in $(seq 1 "$FILES"); do
  d="data/small/$((i % 20))"
  mkdir -p "$d"
  head -c $((FILE_KB * 1000)) /dev/urandom > "$d/f$i.bin"
done
head -c $((BIG_MB * 1000 * 1000)) /dev/urandom > data/big.bin
TOTAL_MB=$(du -sm data | cut -f1)

timed() { # LABEL CMD...: runs CMD, prints "LABEL wall_ms cpu_ms"
  local label="$1"; shift
  local t0 t1
  t0=$(date +%s%3N)
  /usr/bin/time -f '%U %S' -o "$WORK/cpu" "$@" > /dev/null
  t1=$(date +%s%3N)
  awk -v l="$label" -v w=$((t1 - t0)) '{ printf "%s %d %d\n", l, w, ($1 + $2) * 1000 }' "$WORK/cpu"
}

results=()
for mode in plain encrypted; do
  store="s-$mode"
  if [ "$mode" = encrypted ]; then
    out=$("$DRIVES" touch --encrypted --storage "$store")
    export DRIVES_ENCRYPTION_KEY="$(sed -n 's/^Encryption key: //p' <<< "$out")"
  else
    out=$("$DRIVES" touch --storage "$store")
    unset DRIVES_ENCRYPTION_KEY
  fi
  key="$(sed -n 's/^New drive: //p' <<< "$out")"
  results+=("$(timed "$mode import" "$DRIVES" mirror ./data "$key" --storage "$store")")
  results+=("$(timed "$mode export" "$DRIVES" mirror "$key" "./out-$mode" --storage "$store")")
  diff -r data "out-$mode" > /dev/null || { echo "export of $mode differs" >&2; exit 1; }
done
unset DRIVES_ENCRYPTION_KEY

echo
echo "data: ${TOTAL_MB} MB ($FILES files + ${BIG_MB} MB); binary: $DRIVES; $(uptime | sed 's/.*load/load/')"
printf '| %-18s | %8s | %8s | %8s |\n' what "wall ms" "cpu ms" "MB/s"
printf '|%s|%s|%s|%s|\n' -------------------- ---------- ---------- ----------
for r in "${results[@]}"; do
  read -r m op w c <<< "$r"
  printf '| %-18s | %8d | %8d | %8.0f |\n' "$m $op" "$w" "$c" "$(awk -v mb="$TOTAL_MB" -v w="$w" 'BEGIN { print mb * 1000 / w }')"
done
