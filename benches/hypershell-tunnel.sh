#!/usr/bin/env bash
# A burst of TCP connections through a hypershell `-L` tunnel on a local HyperDHT testnet: the Rust pair
# (hypershell-server + hypershell -L, release build) vs the JS hypershell 0.0.15 pair, in the same run.
#
#   benches/hypershell-tunnel.sh                 200 connections of 64 KiB, best of 3
#   CONNS=500 BYTES=16K REPEAT=1 benches/hypershell-tunnel.sh
#   RUST_BIN_DIR=/path/to/other/build benches/hypershell-tunnel.sh   the Rust pair of another build
#
# Each pair: a server allowing the client's key, a client running `-L 127.0.0.1:0:127.0.0.1:<echo>` (one
# hypershell connection; every TCP connection gets its own UDX stream and secret-stream handshake through
# it), and an echo service (tcp-bench echo). `tcp-bench burst` opens CONNS connections to the tunnel at once,
# each sends BYTES and reads them back byte-exact (its sending side held open: the JS tunnels end the whole
# connection on a half-close). Prints the wall time of the whole burst per pair (first
# connect to last byte back) and the ratio. Everything stays on 127.0.0.1; the homes (key files) are temporary.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_DIR="$ROOT/tests/interop"
REPEAT="${REPEAT:-3}"
CONNS="${CONNS:-200}"

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
BYTES="$(to_bytes "${BYTES:-64K}")"

if [ -z "${RUST_BIN_DIR:-}" ]; then
  echo "== building hypershell (release)" >&2
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p hypershell --bins
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p hypertele --example tcp-bench
fi
RUST_BIN_DIR="${RUST_BIN_DIR:-$ROOT/target/release}"
TCP_BENCH="$ROOT/target/release/examples/tcp-bench"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hypershell-tunnel-bench.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Starts a background process (in tests/interop) writing to $WORK/$1.out; remembers its pid.
start() {
  local name="$1"; shift
  (cd "$NODE_DIR" && exec "$@") > "$WORK/$name.out" 2>&1 < /dev/null &
  PIDS+=("$!")
}
# Waits until $WORK/$1.out has a line matching $2 and prints it.
wait_line() {
  local file="$WORK/$1.out" pattern="$2" i
  for i in $(seq 1 600); do
    if grep -q -- "$pattern" "$file" 2>/dev/null; then grep -m1 -- "$pattern" "$file"; return 0; fi
    sleep 0.1
  done
  echo "no line matching $pattern in $file:" >&2; cat "$file" >&2; return 1
}

mkfifo "$WORK/testnet.in"
(sleep 100000 > "$WORK/testnet.in") &
PIDS+=("$!")
(cd "$NODE_DIR" && exec node js/testnet.js 5) < "$WORK/testnet.in" > "$WORK/testnet.out" 2>&1 &
PIDS+=("$!")
BOOTSTRAP="$(wait_line testnet bootstrap | sed 's/.*\["\([^"]*\)".*/\1/')"
echo "== testnet at $BOOTSTRAP" >&2

start echo "$TCP_BENCH" echo
ECHO_PORT="$(wait_line echo '^[0-9]')"

# A home with a key file (hex seed, read by both implementations); allow lists take the hex public key.
home() { # NAME SEED_HEX
  mkdir -p "$WORK/$1/.hypershell"
  echo "$2" > "$WORK/$1/.hypershell/peer"
}
seed() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
public_of() { # SEED_HEX -> hex public key (ed25519 from the seed, through node's crypto)
  node -e '
    const c = require("crypto")
    const seed = Buffer.from(process.argv[1], "hex")
    const key = c.createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" })
    const pub = c.createPublicKey(key).export({ format: "der", type: "spki" })
    console.log(pub.subarray(pub.length - 32).toString("hex"))' "$1"
}

pair() { # SIDE (rust|js) -> starts server and client, sets PORT_<SIDE>
  local side="$1" s c srv cli key port
  s="$(seed)"; c="$(seed)"
  home "$side-server" "$s"; home "$side-client" "$c"
  printf '# <public key>\n%s\n' "$(public_of "$c")" > "$WORK/$side-server/.hypershell/authorized_peers"
  if [ "$side" = rust ]; then
    srv=("$RUST_BIN_DIR/hypershell-server" --bootstrap "$BOOTSTRAP")
    cli=("$RUST_BIN_DIR/hypershell" --bootstrap "$BOOTSTRAP")
  else
    srv=(node js/hypershell_bin.js server "$BOOTSTRAP")
    cli=(node js/hypershell_bin.js client "$BOOTSTRAP")
  fi
  HOME="$WORK/$side-server" SHELL=/bin/sh start "$side-server" "${srv[@]}"
  key="$(wait_line "$side-server" '^hypershell ' | awk '{print $2}')"
  HOME="$WORK/$side-client" start "$side-client" "${cli[@]}" "$key" -L "127.0.0.1:0:127.0.0.1:$ECHO_PORT"
  port="$(wait_line "$side-client" 'Tunnel on' | sed 's/.*://')"
  echo "== $side pair: tunnel on 127.0.0.1:$port" >&2
  printf -v "PORT_$side" '%s' "$port"
}
pair rust
pair js

run_burst() { # PORT -> seconds (0 when any connection failed)
  local out
  out="$(timeout 600 "$TCP_BENCH" burst "$1" "$CONNS" "$BYTES" hold)" || { echo "burst failed: $out" >&2; echo 0; return; }
  echo "$out" >&2
  sed 's/.*"seconds":\([0-9.]*\).*/\1/' <<<"$out"
}
lowest() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a == 0 || (b > 0 && b < a)) ? b : a) }'; }

echo "load before: $(uptime)"
t_rust=0 t_js=0
for round in $(seq 1 "$REPEAT"); do
  echo "== round $round: rust pair, $CONNS connections of $BYTES bytes" >&2
  t_rust="$(lowest "$t_rust" "$(run_burst "$PORT_rust")")"
  echo "== round $round: js pair, $CONNS connections of $BYTES bytes" >&2
  t_js="$(lowest "$t_js" "$(run_burst "$PORT_js")")"
done
echo "load after: $(uptime)"
printf 'rust pair: %s connections of %s bytes through -L in %.2f s\njs pair:   %s connections of %s bytes through -L in %.2f s\n' \
  "$CONNS" "$BYTES" "$t_rust" "$CONNS" "$BYTES" "$t_js"
awk -v r="$t_rust" -v j="$t_js" 'BEGIN { if (r > 0) printf "ratio js/rust = %.2f (time)\n", j / r }'
