#!/usr/bin/env bash
# The main job on this machine, loopback only: build the release binaries, then move 256 MiB through a UDX stream
# between two udxcat processes and check the bytes arrive intact.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${SIZE_MIB:-256}
cargo build --release --examples --quiet
udxcat=target/release/examples/udxcat
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c "$((size_mib << 20))" /dev/urandom >"$tmp/in"
port_a=$((20000 + RANDOM % 20000)); port_b=$((port_a + 1))
"$udxcat" --bind 127.0.0.1:$port_b --connect 127.0.0.1:$port_a --id 2 --remote-id 1 </dev/null >"$tmp/out" &
recv=$!
start=$(date +%s.%N)
"$udxcat" --bind 127.0.0.1:$port_a --connect 127.0.0.1:$port_b --id 1 --remote-id 2 <"$tmp/in" >/dev/null
wait $recv
end=$(date +%s.%N)
cmp "$tmp/in" "$tmp/out"
awk -v s="$start" -v e="$end" -v m="$size_mib" 'BEGIN { printf "udxcat: %d MiB byte-exact over UDX on loopback, %.0f MB/s\n", m, m * 1.048576 / (e - s) }'
