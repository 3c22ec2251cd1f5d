#!/usr/bin/env bash
# drives seed --all: the memory (RSS) of one `drives seed` process seeding many small drives on one swarm, on a
# local testnet (`hyperdht --testnet 5`). Issue #15: memory stays flat with 1,000 small drives from one process.
#
#   benches/drives-seed-many.sh        N=1000 drives of FILES=3 files of FILE_BYTES=2000 bytes
#   (2026-12-07, PROFILE=debug, 2 cores at load 11: 1 drive 9.6 MB; 100: 12.4 MB; 1000: 35 MB announced in 47 s,
#   peak 50 MB, 47 MB a minute later with 5 drives downloaded meanwhile: ~38 kB a drive)
#   COUNTS="1 10 100 1000"             the store sizes measured (each a store of its own, the first N drives of
#                                      one set); default: 1 and N
#   SETTLE=60                          seconds the seeder runs after every drive is announced before the last
#                                      sample (RSS is sampled every second: peak and last are printed)
#   PEERS=5                            drives downloaded by another process (`drives mirror KEY FOLDER`)
#                                      while the biggest store is seeded (each copy compared with its source)
#   PROFILE=debug                      use target/debug (no release build; the dev profile is optimised)
#   KEEP=1                             keeps the work directory
#
# Per store size: RSS after every drive is announced, the peak (VmHWM) and the last sample after SETTLE seconds,
# the time to announce them all, and the RSS per drive above a one-drive seeder.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${N:-1000}"
FILES="${FILES:-3}"
FILE_BYTES="${FILE_BYTES:-2000}"
COUNTS="${COUNTS:-1 $N}"
SETTLE="${SETTLE:-60}"
PEERS="${PEERS:-5}"
PROFILE="${PROFILE:-release}"

if [ "$PROFILE" = release ]; then
  echo "== building drives and hyperdht (release)" >&2
  (cd "$ROOT" && cargo build --release -q -p drives -p hyperdht)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
DRIVES="$BIN/drives"
HYPERDHT="$BIN/hyperdht"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/drives-seed-many.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
wait_count() { # FILE PATTERN COUNT: wait (at most 1200 s) until COUNT lines of FILE match PATTERN
  local n=0
  until [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "$3" ]; do
    sleep 0.2; n=$((n + 1))
    [ "$n" -lt 6000 ] || { echo "timeout waiting for $3 x $2 in $1" >&2; tail -5 "$1" >&2; exit 1; }
  done
}

echo "== testnet (hyperdht --testnet 5)" >&2
"$HYPERDHT" --testnet 5 > "$WORK/testnet.txt" 2> "$WORK/testnet.err" &
PIDS+=($!)
until [ -s "$WORK/testnet.txt" ]; do sleep 0.1; done
BOOT="$(head -1 "$WORK/testnet.txt")"

MAX=0
for c in $COUNTS; do [ "$c" -gt "$MAX" ] && MAX="$c"; done
echo "== $MAX drives of $FILES files x $FILE_BYTES bytes" >&2
t0=$(now_ms)
for i in $(seq 1 "$MAX"); do
  src="$WORK/src/$i"
  mkdir -p "$src"
  for f in $(seq 1 "$FILES"); do
    { printf 'drive %08d file %d\n' "$i" "$f"; head -c "$FILE_BYTES" /dev/urandom; } > "$src/f$f.bin"
  done
done
# One store per size, filled with the first COUNT drives (the drives of a bigger store made by adding to it).
prev=""
for c in $(echo "$COUNTS" | tr ' ' '\n' | sort -n); do
  store="$WORK/store-$c"
  if [ -n "$prev" ]; then cp -a "$WORK/store-$prev" "$store"; start=$((prev + 1)); else start=1; fi
  for i in $(seq "$start" "$c"); do
    key="$("$DRIVES" touch --storage "$store" | sed -n 's/^New drive: //p')"
    "$DRIVES" mirror "$WORK/src/$i" "$key" --storage "$store" > /dev/null
    echo "$key" >> "$WORK/keys"
  done
  prev="$c"
done
echo "   made in $(( ($(now_ms) - t0) / 1000 )) s ($(du -sh "$WORK/store-$MAX" | cut -f1) for $MAX drives)" >&2

printf '%-8s %12s %12s %12s %12s %14s\n' drives announced_s rss_MB peak_MB last_MB per_drive_kB
BASE=""
for c in $(echo "$COUNTS" | tr ' ' '\n' | sort -n); do
  store="$WORK/store-$c"
  out="$WORK/seed-$c.out"
  t0=$(now_ms)
  "$DRIVES" seed --all --storage "$store" --bootstrap "$BOOT" > "$out" 2> "$WORK/seed-$c.err" &
  pid=$!
  PIDS+=("$pid")
  wait_count "$out" '^Announced' 1
  wait_count "$out" ' No peers$' "$c"
  announced=$(( $(now_ms) - t0 ))
  rss=$(rss_kb "$pid")
  if [ "$c" = "$MAX" ] && [ "$PEERS" -gt 0 ]; then
    for n in $(seq 1 "$PEERS"); do
      k="$(sed -n "${n}p" "$WORK/keys")"
      "$DRIVES" mirror "$k" "$WORK/copy-$n" --storage "$WORK/peer-$n" --bootstrap "$BOOT" > /dev/null 2>&1
      diff -r "$WORK/src/$n" "$WORK/copy-$n"
    done
    echo "   $PEERS drives downloaded from the seeder by another process, each equal to its source" >&2
  fi
  for _ in $(seq 1 "$SETTLE"); do sleep 1; kill -0 "$pid"; done
  last=$(rss_kb "$pid")
  peak=$(hwm_kb "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [ -n "$BASE" ] || BASE="$last"
  per=$(( c > 1 ? (last - BASE) / (c - 1) : 0 ))
  awk -v c="$c" -v a="$announced" -v r="$rss" -v p="$peak" -v l="$last" -v d="$per" \
    'BEGIN { printf "%-8s %12.1f %12.1f %12.1f %12.1f %14s\n", c, a / 1000, r / 1024, p / 1024, l / 1024, d }'
done
echo "(load: $(uptime | sed 's/.*load average: //'))"
