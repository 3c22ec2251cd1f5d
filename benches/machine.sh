#!/usr/bin/env bash
# Issue #14 in one go: every "close to the machine's limit" benchmark, one after the other in the same run, and
# one summary table of the issue's targets (the README's table comes from a run of this script).
#
#   benches/machine.sh                 everything (~15-20 min on 2 cores; JS drives at 100k files is most of it)
#   SKIP="drives-1m js-drives"         leaves sections out: hyperbeam hypertele-socat hypertele-burst
#                                      hypershell-tunnel drives-100k js-drives (JS in the 100k drives run)
#                                      drives-1m dht-sim
#   NICE=-10                           (root) runs the pipe benchmarks at that priority, as their scripts do
#   LOGS=dir                           keeps each section's full output there (default: a temporary folder)
#
# Sections and the issue's targets:
#   hyperbeam          1 GiB through the Rust pair vs two bare socat processes over loopback TCP   >= 1/3
#   hypertele-socat    1 GiB through the Rust hypertele pair with socat endpoints vs the JS pair    >= 4x
#   hypertele-burst    200 concurrent 64 KiB echo connections through a hypertele pair, time       <= 1/3 JS
#   hypershell-tunnel  the same burst through a hypershell -L tunnel, time                          <= 1/3 JS
#   drives-100k        100k files of 200 B: import vs cp -r (<= 1x), no-op re-mirrors vs rsync (<= 2x)
#   drives-1m          1M files of 16 B: import RSS (bounded: about the 100k run's), ls -r < 3 s and < 200 MB
#   dht-sim            10k nodes, 10% churn, 5% loss: lookups with >= 19 of the true top 20
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SKIP=" ${SKIP:-} "
LOGS="${LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/machine-bench.XXXXXX")}"
mkdir -p "$LOGS"
want() { [[ "$SKIP" != *" $1 "* ]]; }

echo "== issue #14 benchmarks, logs in $LOGS" >&2
echo "load at start: $(uptime)" | tee "$LOGS/load"
(cd "$ROOT" && cargo build --release -q -p hyperbeam -p hyperdht -p hypertele -p hypershell -p drives \
  --example tcp-bench && cargo build --release -q -p holepunch --example dht_sim)

section() { # NAME COMMAND...: runs a section, its output to the terminal and to $LOGS/NAME
  local name="$1"; shift
  if ! want "$name"; then return; fi
  echo "== $name: $*" >&2
  echo "load before $name: $(uptime)" >> "$LOGS/load"
  "$@" 2>&1 | tee "$LOGS/$name"
}

section hyperbeam env ONLY="rust js tcp tcp-bare" REPEAT="${REPEAT:-2}" "$ROOT/benches/hyperbeam.sh" 1G
section hypertele-socat env MODE=socat REPEAT=2 JS_SIZE=256M "$ROOT/benches/hypertele.sh" 1G
section hypertele-burst env MODE=burst REPEAT=3 "$ROOT/benches/hypertele.sh"
section hypershell-tunnel env REPEAT=3 "$ROOT/benches/hypershell-tunnel.sh"
if want js-drives; then JS_FLAG=(); else JS_FLAG=(SKIP_JS=1); fi
section drives-100k env "${JS_FLAG[@]}" FILES=100000 FILE_BYTES=200 RUNS=3 "$ROOT/benches/drives-scale.sh"
section drives-1m env FILES=1000000 FILE_BYTES=16 SKIP_EXPORT=1 SKIP_JS=1 RUNS=1 "$ROOT/benches/drives-scale.sh"
section dht-sim "$ROOT/target/release/examples/dht_sim" --nodes 10000 --loss-percent 5 --churn-percent 10 --lookups 50
echo "load at end: $(uptime)" | tee -a "$LOGS/load"

python3 - "$LOGS" <<'PY'
import os, re, sys
logs = sys.argv[1]
def text(name):
    try:
        return open(os.path.join(logs, name)).read()
    except OSError:
        return None
rows = []
def row(what, rust, ref, ratio, target, met):
    rows.append((what, rust, ref, ratio, target, "yes" if met else "NO"))
def find_row(t, first, ncols):
    """The cells of the first markdown table row of ncols columns whose first cell is `first` (or its first word)."""
    for line in t.splitlines():
        if line.startswith("|"):
            cols = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cols) == ncols and (cols[0] == first or cols[0].startswith(first + " ")):
                return cols
    return None
num = lambda cell: float(re.match(r"[\d.]+", cell).group(0))

t = text("hyperbeam")
if t:
    bare, rust, js = find_row(t, "tcp-bare", 7), find_row(t, "rust", 7), find_row(t, "js", 7)
    if bare and rust:
        b, r = num(bare[1]), num(rust[1])
        row(f"hyperbeam 1 GiB (MB/s; CPU s/GiB sender / receiver {rust[5]} / {rust[6]})", f"{r:.0f}",
            f"{b:.0f} (bare TCP)" + (f"; JS {num(js[1]):.0f}" if js else ""), f"1/{b / r:.2f}", ">= 1/3", r * 3 >= b)
t = text("hypertele-socat")
if t:
    r = re.search(r"rust pair \(socat\): ([\d.]+) MB/s, CPU s/GiB: client ([\d.]+), server ([\d.]+)", t)
    j = re.search(r"js pair \(socat\):\s+([\d.]+) MB/s", t)
    if r and j:
        ratio = float(r.group(1)) / float(j.group(1))
        row(f"hypertele, socat endpoints (MB/s; CPU s/GiB client / server {r.group(2)} / {r.group(3)})",
            r.group(1), j.group(1) + " (JS)", f"{ratio:.2f}x", ">= 4x", ratio >= 4)
for name, label in (("hypertele-burst", "hypertele burst, 200 x 64 KiB (s)"),
                    ("hypershell-tunnel", "hypershell -L burst, 200 x 64 KiB (s)")):
    t = text(name)
    if t:
        r = re.search(r"rust pair: .* in ([\d.]+) s", t)
        j = re.search(r"js pair: .* in ([\d.]+) s", t)
        if r and j:
            ratio = float(j.group(1)) / float(r.group(1))
            row(label, r.group(1), j.group(1) + " (JS)", f"1/{ratio:.2f}", "<= 1/3", ratio >= 3)
# drives-scale.sh rows: step | Rust | reference | Rust / reference | JS | Rust RSS | JS RSS
t = text("drives-100k")
import_rss_100k = None
if t:
    for step, target in (("import", 1.0), ("no-op re-mirror folder -> drive", 2.0), ("no-op re-mirror drive -> folder", 2.0)):
        c = find_row(t, step, 7)
        if c:
            if step == "import":
                import_rss_100k = num(c[5])
            js = f"; JS {c[4]}" if c[4] not in ("", "-", "- s") else ""
            row(f"drives 100k files: {step} (s; RSS {c[5]})", c[1], c[2] + js, c[3] + "x", f"<= {target:g}x",
                num(c[3]) <= target)
t = text("drives-1m")
if t:
    c = find_row(t, "import", 7)
    if c:
        rss = num(c[5])
        bounded = import_rss_100k is None or rss <= 4 * max(import_rss_100k, 25)
        row(f"drives 1M files: import (s; RSS {c[5]}" + (f", 100k: {import_rss_100k:.0f} MB" if import_rss_100k else "") + ")",
            c[1], c[2], c[3] + "x", "memory bounded", bounded)
    c = find_row(t, "ls -r", 7)
    if c:
        row(f"drives 1M files: {c[0]} (s; RSS {c[5]})", c[1], c[2], c[3] + "x", "< 3 s, < 200 MB",
            num(c[1]) < 3 and num(c[5]) < 200)
t = text("dht-sim")
if t:
    m = re.search(r"(\d+)/(\d+) with >= 19 of the true top 20, overlap min (\d+)/20 mean ([\d.]+)/20", t)
    if m:
        ok, n = int(m.group(1)), int(m.group(2))
        row(f"dht_sim 10k nodes, 10% churn, 5% loss (lookups with >= 19 of the top 20; mean {m.group(4)}/20)",
            f"{ok}/{n}", "", "", "every lookup", ok == n)
print("\n## issue #14 targets, one run\n")
print(open(os.path.join(logs, "load")).read().rstrip().replace("\n", "  \n"))
print("\n| figure | Rust | reference | ratio | target | met |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
