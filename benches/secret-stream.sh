#!/bin/sh
# Throughput of a Rust<->Rust secret stream over a loopback TCP pair (release build).
# usage: benches/secret-stream.sh [MiB] [--both-ways]     (default 1024 MiB one way)
set -e
cd "$(dirname "$0")/.."
exec cargo run --release -q -p holepunch --example secret_stream_throughput -- "${@:-1024}"
