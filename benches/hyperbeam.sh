#!/usr/bin/env bash
# The hyperbeam pipe end to end on loopback: the Rust pair (target/release/hyperbeam) and the JS hyperbeam 3.1.0
# pair (node tests/interop/js/hyperbeam.js), in the same run, on the same local testnet and the same data.
#
#   benches/hyperbeam.sh [SIZE]          SIZE in bytes or with a K/M/G suffix (default 1G)
#   REPEAT=3                             runs per pair; the best figure of each column is reported
#   TESTNET=rust|js                      the DHT: `hyperdht --testnet 5` (default) or tests/interop/js/testnet.js
#   ONLY="rust js tcp tcp-bare"          which pairs to run (tcp: the plain-TCP reference below; tcp-bare: the
#                                        same two socat processes file to file, without the harness; rust-nossl:
#                                        the Rust pair with HOLEPUNCH_NO_OPENSSL=1, its RustCrypto ChaCha20-Poly1305;
#                                        rust-base: the hyperbeam binary in $RUST_BASE, e.g. a build from before a
#                                        change, to compare in the same run)
#   LIMIT=300                            seconds allowed per transfer
#   KEEP=1                               keeps the work directory (stderr of the last run of each side)
#   NICE=-10                             runs both pairs at that priority (root only): on a machine shared with
#                                        builds, this measures the programs rather than the scheduler
#
# One run: the announcer (sender) starts with a file of random bytes on stdin; once it printed its "Joined the
# DHT" line, the connector (receiver) starts with the passphrase. From the connector's start we measure
#   - first byte: until its stdout yields the first byte (DHT bootstrap + FIND_PEER + handshake + first data),
#   - total: until its stdout ends (all SIZE bytes), which gives the throughput (SIZE / total),
# and for both processes the peak RSS and the CPU time (user + system) from wait4(2). The connector's stdin stays
# open until it received SIZE bytes (the JS bin ends its side as soon as the far side ends). The received
# bytes go to a file by splice(2), so the measuring process costs next to no CPU, and are compared with the
# sent ones after each run. Files live in /dev/shm when it exists, so the disk is not measured.
#
# The reference of what the machine can do, in the same run and the same harness: two plain processes moving the
# same bytes over loopback TCP (`socat -u -b 1048576`, the sender listening on 127.0.0.1 with the file on stdin,
# the receiver connecting and writing to its stdout). The table gives each pair's throughput as a fraction of it,
# and each side's CPU seconds per GiB.
#
# Issue #3 targets: Rust throughput >= 4x JS, Rust first byte <= 1/3 of JS, Rust peak RSS <= 1/4 of JS.
# Issue #14 target: Rust throughput >= 1/3 of two plain processes over loopback TCP (tcp-bare; the harnessed tcp
# pair is printed too, as it measures the same path through the same harness).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_ARG="${1:-${SIZE:-1G}}"
REPEAT="${REPEAT:-3}"
LIMIT="${LIMIT:-300}"
ONLY="${ONLY:-rust js tcp tcp-bare}"
TESTNET="${TESTNET:-rust}"

to_bytes() {
  local s="$1" n unit
  n="${s%[KkMmGg]}"
  unit="${s#"$n"}"
  case "$unit" in
    K|k) echo $((n * 1024)) ;;
    M|m) echo $((n * 1024 * 1024)) ;;
    G|g) echo $((n * 1024 * 1024 * 1024)) ;;
    "") echo "$n" ;;
  esac
}
BYTES="$(to_bytes "$SIZE_ARG")"

echo "== building hyperbeam and hyperdht (release)" >&2
(cd "$ROOT" && cargo build --release -q -p hyperbeam -p hyperdht)
NODE_DIR="$ROOT/tests/interop"
if [[ " $ONLY " == *" tcp"* ]] && ! command -v socat > /dev/null; then
  echo "error: socat is missing (the plain-TCP reference); install it or set ONLY=\"rust js\"" >&2
  exit 1
fi
if [[ " $ONLY " == *" rust-base "* ]] && [ ! -x "${RUST_BASE:-}/hyperbeam" ]; then
  echo "error: rust-base needs RUST_BASE, a directory holding a hyperbeam binary" >&2
  exit 1
fi
if [ ! -d "$NODE_DIR/node_modules/hyperbeam" ]; then
  echo "error: $NODE_DIR/node_modules is missing; run npm ci there" >&2
  exit 1
fi

WORK_BASE=/dev/shm
[ -d "$WORK_BASE" ] && [ -w "$WORK_BASE" ] || WORK_BASE="${TMPDIR:-/tmp}"
WORK="$(mktemp -d "$WORK_BASE/hyperbeam-bench.XXXXXX")"
TESTNET_PID=""
cleanup() {
  if [ -n "$TESTNET_PID" ]; then kill "$TESTNET_PID" 2>/dev/null || true; wait "$TESTNET_PID" 2>/dev/null || true; fi
  if [ -n "${KEEP:-}" ]; then rm -f "$WORK/in"; echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== starting a $TESTNET testnet of 5 nodes" >&2
first_line() { # FILE: wait (at most 60 s) for the first line of FILE and print it
  local waited=0
  until [ -s "$1" ] && [ "$(wc -l < "$1")" -gt 0 ]; do
    sleep 0.05; waited=$((waited + 1))
    if [ "$waited" -gt 1200 ] || ! kill -0 "$TESTNET_PID" 2>/dev/null; then
      echo "error: the testnet did not start" >&2; cat "$WORK/testnet_err" >&2; exit 1
    fi
  done
  head -n 1 "$1"
}
if [ "$TESTNET" = js ]; then
  # testnet.js runs until its stdin closes: give it a FIFO held open by us (fd 8) until we exit.
  mkfifo "$WORK/testnet_in"
  (cd "$NODE_DIR" && exec node js/testnet.js 5 < "$WORK/testnet_in" > "$WORK/testnet_out" 2> "$WORK/testnet_err") &
  TESTNET_PID=$!
  exec 8> "$WORK/testnet_in"
  BOOTSTRAP="$(python3 -c 'import json, sys; print(",".join(json.loads(sys.argv[1])["bootstrap"]))' "$(first_line "$WORK/testnet_out")")"
else
  "$ROOT/target/release/hyperdht" --testnet 5 < /dev/null > "$WORK/testnet_out" 2> "$WORK/testnet_err" &
  TESTNET_PID=$!
  BOOTSTRAP="$(first_line "$WORK/testnet_out")"
fi
echo "   bootstrap $BOOTSTRAP" >&2

# Generated after the testnet started: its nodes settle meanwhile (a node that just joined may not know yet
# that it is reachable, and the Rust connector has no NAT holepunching).
echo "== generating $BYTES random bytes" >&2
head -c "$BYTES" /dev/urandom > "$WORK/in"

# One transfer. argv: rust|js, run number. Prints one JSON line of figures, and a summary on stderr.
run_once() {
  python3 - "$1" "$2" <<'PY'
import fcntl, json, os, subprocess, sys, threading, time

pair = sys.argv[1]
root, node_dir, work = os.environ["ROOT"], os.environ["NODE_DIR"], os.environ["WORK"]
bootstrap, size, limit = os.environ["BOOTSTRAP"], int(os.environ["BYTES"]), float(os.environ["LIMIT"])

if os.environ.get("NICE"):
    # This process reads the receiver's output: it runs at the same priority as the pairs it measures.
    os.nice(int(os.environ["NICE"]))

if pair == "tcp-bare":
    # Two bare socat processes, file to file over loopback TCP, no harness in between (the receiver listens
    # and writes the file itself; the sender reads it): what the machine does without anything of ours.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out_path = os.path.join(work, "out")
    b = subprocess.Popen(["socat", "-d", "-d", "-u", "-b", "1048576",
                          f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", f"OPEN:{out_path},creat,trunc"],
                         stderr=subprocess.PIPE)
    for raw in b.stderr:
        if b"listening on" in raw:
            break
    threading.Thread(target=lambda: b.stderr.read(), daemon=True).start()
    t0 = time.monotonic()
    a = subprocess.Popen(["socat", "-u", "-b", "1048576", f"OPEN:{os.path.join(work, 'in')}",
                          f"TCP:127.0.0.1:{port}"])
    _, status_b, usage_b = os.wait4(b.pid, 0)
    t_end = time.monotonic()
    _, status_a, usage_a = os.wait4(a.pid, 0)
    if os.waitstatus_to_exitcode(status_a) != 0 or os.waitstatus_to_exitcode(status_b) != 0:
        sys.exit("error: tcp-bare: socat failed")
    if subprocess.run(["cmp", "-s", os.path.join(work, "in"), out_path]).returncode != 0:
        sys.exit("error: tcp-bare: received bytes differ from the sent ones")
    os.unlink(out_path)
    cpu = lambda u: u.ru_utime + u.ru_stime
    total = t_end - t0
    r = {"announce": 0.0, "first": 0.0, "total": total, "mbps": size / total / 1e6, "data_mbps": size / total / 1e6,
         "rss_a": usage_a.ru_maxrss / 1024, "rss_b": usage_b.ru_maxrss / 1024,
         "cpu_a": cpu(usage_a), "cpu_b": cpu(usage_b),
         "cpu_a_gib": cpu(usage_a) / (size / 2**30), "cpu_b_gib": cpu(usage_b) / (size / 2**30)}
    print(json.dumps(r))
    print(f"tcp-bare run {sys.argv[2]}: {r['mbps']:7.1f} MB/s ({total:.2f} s)  CPU {r['cpu_a']:.2f} / {r['cpu_b']:.2f} s"
          " (sender / receiver)", file=sys.stderr)
    sys.exit(0)

tcp_port = None
if pair == "tcp":
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        tcp_port = s.getsockname()[1]

def command(args):
    if pair == "tcp":
        # The plain-TCP reference: the sender listens (and prints "listening on" with -d -d), the receiver
        # connects; 1 MiB buffers, one direction (-u).
        if not args:
            return ["socat", "-d", "-d", "-u", "-b", "1048576", "STDIN",
                    f"TCP-LISTEN:{tcp_port},bind=127.0.0.1,reuseaddr"]
        return ["socat", "-u", "-b", "1048576", f"TCP:127.0.0.1:{tcp_port}", "STDOUT"]
    if pair == "rust-base":
        return [os.path.join(os.environ["RUST_BASE"], "hyperbeam"), "--bootstrap", bootstrap] + args
    if pair.startswith("rust"):
        return [os.path.join(root, "target/release/hyperbeam"), "--bootstrap", bootstrap] + args
    return ["node", "js/hyperbeam.js", bootstrap] + args

def fail(msg):
    for name in ("err_a", "err_b"):
        try:
            sys.stderr.write(f"--- {name}\n" + open(os.path.join(work, name)).read())
        except OSError:
            pass
    sys.exit(f"error: {pair}: {msg}")

env = dict(os.environ)
env.pop("HYPERDHT_BOOTSTRAP", None)
env.pop("RUST_LOG", None)
if pair == "rust-nossl":
    env["HOLEPUNCH_NO_OPENSSL"] = "1"
deadline = time.monotonic() + limit

# The announcer sends the file. Its stderr is read line by line for the passphrase and the "Joined" line.
start_a = time.monotonic()
with open(os.path.join(work, "in"), "rb") as data:
    a = subprocess.Popen(command([]), cwd=node_dir, env=env, stdin=data, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
err_a = open(os.path.join(work, "err_a"), "w")
passphrase, announced = None, threading.Event()
def read_a():
    global passphrase
    for raw in a.stderr:
        line = raw.decode(errors="replace")
        err_a.write(line)
        err_a.flush()
        if line.startswith("[hyperbeam] Run hyperbeam "):
            passphrase = line.split()[3]
        if pair == "tcp" and "listening on" in line:
            passphrase = "tcp"
            announced.set()
        if "remote address" in line or "Could not detect" in line:
            announced.set()
    announced.set()
threading.Thread(target=read_a, daemon=True).start()
if not announced.wait(max(0.0, deadline - time.monotonic())) or passphrase is None or a.poll() is not None:
    a.kill()
    fail("the announcer did not announce")
announce_time = time.monotonic() - start_a

# The connector receives. Its stdin is a pipe held open until everything arrived.
out_path = os.path.join(work, "out")
with open(out_path, "wb") as out, open(os.path.join(work, "err_b"), "w") as err_b:
    t0 = time.monotonic()
    b = subprocess.Popen(command([passphrase]), cwd=node_dir, env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=err_b)
    # A watchdog: past the deadline both processes are killed, which ends the reads below. It waits on an
    # event rather than polling the processes: Popen.poll() reaps a child that has exited, and the wait4 below
    # (for the resource usage) then fails with ECHILD.
    reaped = threading.Event()
    def watchdog():
        if not reaped.wait(max(0.0, deadline - time.monotonic())):
            a.kill()
            b.kill()
    threading.Thread(target=watchdog, daemon=True).start()
    fd = b.stdout.fileno()
    # A 1 MiB pipe (the default is 64 KiB), so that the receiver rarely waits for this reader.
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass
    first = os.read(fd, 65536)
    t_first = time.monotonic()
    received = len(first)
    out.write(first)
    out.flush()
    while received < size:
        n = os.splice(fd, out.fileno(), min(1 << 20, size - received))
        if n == 0:
            break
        received += n
    t_end = time.monotonic()
    # Everything arrived: end the connector's side, then read what else comes (nothing, in a good run).
    b.stdin.close()
    while True:
        n = os.splice(fd, out.fileno(), 1 << 20)
        if n == 0:
            break
        received += n
    _, status_b, usage_b = os.wait4(b.pid, 0)
    _, status_a, usage_a = os.wait4(a.pid, 0)
    reaped.set()
    b.returncode, a.returncode = 0, 0  # reaped above

if time.monotonic() > deadline:
    fail(f"timed out after {limit} s")
if received == 0:
    fail("no byte arrived")
if os.waitstatus_to_exitcode(status_a) != 0 or os.waitstatus_to_exitcode(status_b) != 0:
    fail(f"exit codes: announcer {os.waitstatus_to_exitcode(status_a)}, connector {os.waitstatus_to_exitcode(status_b)}")
if received != size:
    fail(f"received {received} of {size} bytes")
if subprocess.run(["cmp", "-s", os.path.join(work, "in"), out_path]).returncode != 0:
    fail("received bytes differ from the sent ones")
os.unlink(out_path)

cpu = lambda u: u.ru_utime + u.ru_stime
r = {
    "announce": announce_time,
    "first": t_first - t0,
    "total": t_end - t0,
    "mbps": size / (t_end - t0) / 1e6,
    "data_mbps": size / max(t_end - t_first, 1e-9) / 1e6,
    "rss_a": usage_a.ru_maxrss / 1024, "rss_b": usage_b.ru_maxrss / 1024,
    "cpu_a": cpu(usage_a), "cpu_b": cpu(usage_b),
    "cpu_a_gib": cpu(usage_a) / (size / 2**30), "cpu_b_gib": cpu(usage_b) / (size / 2**30),
}
print(json.dumps(r))
print(f"{pair:<4} run {sys.argv[2]}: {r['mbps']:7.1f} MB/s ({r['total']:.2f} s; first to last byte"
      f" {r['data_mbps']:.1f} MB/s)  first byte {r['first'] * 1000:.0f} ms  announce {r['announce'] * 1000:.0f} ms"
      f"  peak RSS {r['rss_a']:.1f} / {r['rss_b']:.1f} MiB  CPU {r['cpu_a']:.2f} / {r['cpu_b']:.2f} s"
      " (sender / receiver)", file=sys.stderr)
PY
}

export ROOT NODE_DIR WORK WORK_BASE BOOTSTRAP BYTES LIMIT
# Runs alternate between the pairs, so that a change in the machine's load hits both alike.
for i in $(seq 1 "$REPEAT"); do
  for pair in $ONLY; do
    run_once "$pair" "$i" >> "$WORK/results_$pair"
  done
done

# The table: best of the runs per column (highest throughput, lowest first byte, lowest peak RSS).
python3 - "$WORK" "$ONLY" <<'PY'
import json, os, sys
work, pairs = sys.argv[1], sys.argv[2].split()
size = int(os.environ["BYTES"])
best = {}
for p in pairs:
    runs = [json.loads(l) for l in open(os.path.join(work, "results_" + p))]
    best[p] = {
        "mbps": max(r["mbps"] for r in runs),
        "data_mbps": max(r["data_mbps"] for r in runs),
        "first": min(r["first"] for r in runs) * 1000,
        "announce": min(r["announce"] for r in runs) * 1000,
        "rss": min(max(r["rss_a"], r["rss_b"]) for r in runs),
        "rss_a": min(r["rss_a"] for r in runs),
        "rss_b": min(r["rss_b"] for r in runs),
        "cpu": min(r["cpu_a"] + r["cpu_b"] for r in runs),
        "cpu_a_gib": min(r["cpu_a_gib"] for r in runs),
        "cpu_b_gib": min(r["cpu_b_gib"] for r in runs),
        "runs": len(runs),
    }
rows = [
    ("throughput, start to last byte (MB/s)", "mbps", "{:.1f}", True, 4.0),
    ("throughput, first to last byte (MB/s)", "data_mbps", "{:.1f}", True, None),
    ("connector start to first byte (ms)", "first", "{:.0f}", False, 3.0),
    ("announcer start to announced (ms)", "announce", "{:.0f}", False, None),
    ("peak RSS, larger of the two (MiB)", "rss", "{:.1f}", False, 4.0),
    ("peak RSS sender (MiB)", "rss_a", "{:.1f}", False, None),
    ("peak RSS receiver (MiB)", "rss_b", "{:.1f}", False, None),
    ("CPU time sender + receiver (s)", "cpu", "{:.2f}", False, None),
    ("CPU per GiB, sender (s)", "cpu_a_gib", "{:.2f}", False, None),
    ("CPU per GiB, receiver (s)", "cpu_b_gib", "{:.2f}", False, None),
]
n = min(b["runs"] for b in best.values())
print(f"\nhyperbeam, {size} bytes one way over loopback, testnet {os.environ.get('TESTNET', 'rust')}, best of {n}\n")
if "rust" in best and "js" in best:
    print("| figure | Rust | JS | ratio | issue #3 target | met |")
    print("|---|---|---|---|---|---|")
    for label, key, fmt, higher, target in rows:
        r, j = best["rust"][key], best["js"][key]
        ratio = (r / j if higher else j / r) if r and j else float("nan")
        goal = "" if target is None else (f">= {target:g}x" if higher else f"<= 1/{target:g}")
        met = "" if target is None else ("yes" if ratio >= target else "NO")
        shown = f"{ratio:.2f}x" if higher else f"1/{ratio:.2f}"
        print(f"| {label} | {fmt.format(r)} | {fmt.format(j)} | {shown} | {goal} | {met} |")
else:
    for p in [p for p in pairs if p != "tcp"]:
        print(f"| figure | {p} |\n|---|---|")
        for label, key, fmt, _, _ in rows:
            print(f"| {label} | {fmt.format(best[p][key])} |")
if "tcp-bare" in best:
    t = best["tcp-bare"]
    print(f"\nbare TCP (two socat processes, file to file in {os.environ['WORK_BASE']}, no harness): {t['mbps']:.1f} MB/s;"
          f" CPU per GiB {t['cpu_a_gib']:.2f} s sender, {t['cpu_b_gib']:.2f} s receiver\n")
    print("| pair | MB/s | of bare TCP | issue #14 target >= 1/3 |")
    print("|---|---|---|---|")
    for p in [p for p in pairs if p != "tcp-bare"]:
        b = best[p]
        met = ("met" if b["mbps"] * 3 >= t["mbps"] else "NOT met") if p == "rust" else ""
        print(f"| {p} | {b['mbps']:.1f} | 1/{t['mbps'] / b['mbps']:.2f} | {met} |")
if "tcp" in best:
    t = best["tcp"]
    print(f"\nplain TCP reference (socat pair, loopback): {t['mbps']:.1f} MB/s start to last byte"
          f" ({t['data_mbps']:.1f} MB/s first to last byte); CPU per GiB {t['cpu_a_gib']:.2f} s sender,"
          f" {t['cpu_b_gib']:.2f} s receiver\n")
    print("| pair | MB/s | of plain TCP | MB/s first to last byte | of plain TCP | CPU s/GiB sender | CPU s/GiB receiver |")
    print("|---|---|---|---|---|---|---|")
    for p in pairs:
        b = best[p]
        goal = " (issue #14 target >= 1/3: " + ("met)" if b["mbps"] * 3 >= t["mbps"] else "NOT met)") if p == "rust" else ""
        print(f"| {p} | {b['mbps']:.1f} | 1/{t['mbps'] / b['mbps']:.2f}{goal} | {b['data_mbps']:.1f} |"
              f" 1/{t['data_mbps'] / b['data_mbps']:.2f} | {b['cpu_a_gib']:.2f} | {b['cpu_b_gib']:.2f} |")
PY
