#!/usr/bin/env bash
# drives at scale (issue #14): many small files, the Rust `drives` CLI against the machine's own tools and the
# JS drives 2.9.1 CLI (tests/interop/js/drives-cli.js), in the same run on the same tree.
#
#   benches/drives-scale.sh                 FILES=100000 (100 folders), FILE_BYTES=200
#   FILES=1000000 SKIP_JS=1                 the 1M run (JS is only run up to 100k files: minutes per step)
#   PROFILE=dev|release                     which build of drives (default release)
#   DRIVES_BIN=/path/to/drives              that binary instead of building one (an older build, to compare)
#   WORK_BASE=/dev/shm                      where the tree and stores go (default /dev/shm: a tmpfs)
#   RUNS=3                                  runs of each no-op step (medians; Rust and reference interleaved)
#   SKIP_EXPORT=1                           leaves out the export and the drive -> folder no-op (1M runs)
#   KEEP=1                                  keeps the work directory
#
# Rows (wall time; RSS = peak resident set from /usr/bin/time -v):
#   import          `drives mirror TREE KEY` into a new drive        vs `cp -r TREE COPY`
#   no-op -> drive  the same mirror again, nothing changed           vs `rsync -a --delete TREE/ COPY/` (no-op)
#   export          `drives mirror KEY OUT` into an empty folder     vs `cp -r`
#   no-op -> folder the same export again, nothing changed           vs the same rsync no-op
#   ls -r           `drives ls KEY -r > /dev/null`                    vs `find TREE -type f > /dev/null`
# Without rsync the reference of the no-op rows is `cp -au TREE/. COPY/` (copies nothing when nothing changed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILES="${FILES:-100000}"
FILE_BYTES="${FILE_BYTES:-200}"
RUNS="${RUNS:-3}"
PROFILE="${PROFILE:-release}"
NODE_DIR="${NODE_DIR:-$ROOT/tests/interop}"

if [ -n "${DRIVES_BIN:-}" ]; then
  DRIVES="$DRIVES_BIN"
  PROFILE="$DRIVES_BIN"
elif [ "$PROFILE" = release ]; then
  echo "== building drives (release)" >&2
  (cd "$ROOT" && cargo build --release -q -p drives)
else
  echo "== building drives (dev)" >&2
  (cd "$ROOT" && cargo build -q -p drives)
fi
DRIVES="${DRIVES:-${CARGO_TARGET_DIR:-$ROOT/target}/$([ "$PROFILE" = release ] && echo release || echo debug)/drives}"

WORK="$(mktemp -d "${WORK_BASE:-/dev/shm}/drives-scale.XXXXXX")"
cleanup() {
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== tree: $FILES files of $FILE_BYTES bytes in $WORK" >&2
python3 - "$WORK/tree" "$FILES" "$FILE_BYTES" <<'EOF'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dirs = max(1, n // 1000)
for d in range(dirs):
    os.makedirs(os.path.join(root, "d%04d" % d), exist_ok=True)
pad = os.urandom(size)
for i in range(n):
    with open(os.path.join(root, "d%04d" % (i % dirs), "f%07d.txt" % i), "wb") as f:
        f.write((b"%08d" % i + pad)[:size])
EOF

# TIME_OUT FILE CMD...: runs CMD under /usr/bin/time -v; prints its wall seconds; the peak RSS (kB) goes to FILE.
timed() {
  local out="$1"
  shift
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$out.time" "$@" > "$out.stdout" 2> "$out.stderr" || {
    echo "failed: $*" >&2
    tail -5 "$out.stderr" >&2
    exit 1
  }
  t1=$(date +%s%N)
  awk '/Maximum resident set size/ { print $6 }' "$out.time" > "$out.rss"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
rss_mb() { awk '{ printf "%.0f", $1 / 1024 }' "$1.rss"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }

if command -v rsync > /dev/null; then
  REF_NAME="rsync -a --delete (no-op)"
  REF_CMD=(rsync -a --delete "$WORK/tree/" "$WORK/refcopy/")
else
  REF_NAME="cp -au (no-op; rsync not installed)"
  REF_CMD=(cp -au "$WORK/tree/." "$WORK/refcopy/")
fi

S="$WORK/store"
D() { local c="$1"; shift; "$DRIVES" "$c" --storage "$S" "$@"; }
export NO_COLOR=1

echo "== reference: cp -r, then $REF_NAME" >&2
CP_T=$(timed "$WORK/cp" cp -r "$WORK/tree" "$WORK/cpcopy")
rm -rf "$WORK/cpcopy"
ref_noop_first() { if command -v rsync > /dev/null; then rsync -a "$WORK/tree/" "$WORK/refcopy/"; else cp -a "$WORK/tree" "$WORK/refcopy"; fi; }
ref_noop_first
FIND_T=$(timed "$WORK/find" find "$WORK/tree" -type f)

echo "== Rust: import" >&2
KEY=$(D touch 2> /dev/null | sed -n 's/^New drive: //p')
IMPORT_T=$(timed "$WORK/rs-import" "$DRIVES" mirror --storage "$S" "$WORK/tree" "$KEY")
IMPORT_RSS=$(rss_mb "$WORK/rs-import")

EXPORT_T=- EXPORT_RSS=- NOOP_OUT_T=- NOOP_OUT_RSS=-
if [ -z "${SKIP_EXPORT:-}" ]; then
  echo "== Rust: export" >&2
  EXPORT_T=$(timed "$WORK/rs-export" "$DRIVES" mirror --storage "$S" "$KEY" "$WORK/out")
  EXPORT_RSS=$(rss_mb "$WORK/rs-export")
fi

echo "== no-op runs, interleaved ($RUNS each)" >&2
: > "$WORK/noop-ref"
: > "$WORK/noop-in"
: > "$WORK/noop-out"
: > "$WORK/ls"
for r in $(seq 1 "$RUNS"); do
  timed "$WORK/ref" "${REF_CMD[@]}" >> "$WORK/noop-ref"
  echo >> "$WORK/noop-ref"
  timed "$WORK/rs-noop-in" "$DRIVES" mirror --storage "$S" "$WORK/tree" "$KEY" >> "$WORK/noop-in"
  echo >> "$WORK/noop-in"
  if [ -z "${SKIP_EXPORT:-}" ]; then
    timed "$WORK/rs-noop-out" "$DRIVES" mirror --storage "$S" "$KEY" "$WORK/out" >> "$WORK/noop-out"
    echo >> "$WORK/noop-out"
  fi
  timed "$WORK/rs-ls" "$DRIVES" ls --storage "$S" "$KEY" -r >> "$WORK/ls"
  echo >> "$WORK/ls"
done
REF_T=$(median < "$WORK/noop-ref")
NOOP_IN_T=$(median < "$WORK/noop-in")
LS_T=$(median < "$WORK/ls")
NOOP_IN_RSS=$(rss_mb "$WORK/rs-noop-in")
LS_RSS=$(rss_mb "$WORK/rs-ls")
LS_LINES=$(wc -l < "$WORK/rs-ls.stdout")
grep -q "+0 -0 ~0" "$WORK/rs-noop-in.stdout" || { echo "the no-op import changed something:" >&2; cat "$WORK/rs-noop-in.stdout" >&2; exit 1; }
if [ -z "${SKIP_EXPORT:-}" ]; then
  NOOP_OUT_T=$(median < "$WORK/noop-out")
  NOOP_OUT_RSS=$(rss_mb "$WORK/rs-noop-out")
  grep -q "+0 -0 ~0" "$WORK/rs-noop-out.stdout" || { echo "the no-op export changed something:" >&2; cat "$WORK/rs-noop-out.stdout" >&2; exit 1; }
  diff -r "$WORK/tree" "$WORK/out" > /dev/null || { echo "export differs from the tree" >&2; exit 1; }
fi

JS_IMPORT=- JS_NOOP_IN=- JS_LS=- JS_IMPORT_RSS=- JS_LS_RSS=- JS_NOOP_RSS=-
if [ -z "${SKIP_JS:-}" ] && [ "$FILES" -le 100000 ]; then
  echo "== JS drives 2.9.1: import, no-op, ls -r (one run each)" >&2
  JSW="$WORK/js"
  mkdir -p "$JSW"
  JSD() { (cd "$JSW" && node "$NODE_DIR/js/drives-cli.js" "$@"); }
  JSD init > /dev/null 2>&1
  JKEY=$(JSD touch 2> /dev/null | sed -n 's/^New drive: //p')
  JS_IMPORT=$(cd "$JSW" && timed "$WORK/js-import" node "$NODE_DIR/js/drives-cli.js" mirror "$WORK/tree" "$JKEY")
  JS_IMPORT_RSS=$(rss_mb "$WORK/js-import")
  JS_NOOP_IN=$(cd "$JSW" && timed "$WORK/js-noop" node "$NODE_DIR/js/drives-cli.js" mirror "$WORK/tree" "$JKEY")
  JS_NOOP_RSS=$(rss_mb "$WORK/js-noop")
  JS_LS=$(cd "$JSW" && timed "$WORK/js-ls" node "$NODE_DIR/js/drives-cli.js" ls "$JKEY" -r)
  JS_LS_RSS=$(rss_mb "$WORK/js-ls")
fi

echo
echo "drives at scale: $FILES files of $FILE_BYTES B in $(df --output=fstype "$WORK" | tail -1 | tr -d ' '), drives $PROFILE profile, $(date -u +%F)"
echo "uptime: $(uptime)"
echo
echo "| step | Rust drives | reference | Rust / reference | JS drives 2.9.1 | Rust RSS | JS RSS |"
echo "|---|---|---|---|---|---|---|"
echo "| import | ${IMPORT_T} s | ${CP_T} s (cp -r) | $(ratio "$IMPORT_T" "$CP_T") | ${JS_IMPORT} s | ${IMPORT_RSS} MB | ${JS_IMPORT_RSS} MB |"
echo "| no-op re-mirror folder -> drive | ${NOOP_IN_T} s | ${REF_T} s ($REF_NAME) | $(ratio "$NOOP_IN_T" "$REF_T") | ${JS_NOOP_IN} s | ${NOOP_IN_RSS} MB | ${JS_NOOP_RSS} MB |"
echo "| export drive -> empty folder | ${EXPORT_T} s | ${CP_T} s (cp -r) | $(ratio "$EXPORT_T" "$CP_T") | - | ${EXPORT_RSS} MB | - |"
echo "| no-op re-mirror drive -> folder | ${NOOP_OUT_T} s | ${REF_T} s ($REF_NAME) | $(ratio "$NOOP_OUT_T" "$REF_T") | - | ${NOOP_OUT_RSS} MB | - |"
echo "| ls -r ($LS_LINES lines) | ${LS_T} s | ${FIND_T} s (find -type f) | $(ratio "$LS_T" "$FIND_T") | ${JS_LS} s | ${LS_RSS} MB | ${JS_LS_RSS} MB |"
