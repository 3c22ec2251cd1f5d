#!/usr/bin/env bash
# Builds every fuzz target and runs each for N seconds (default 10). Exits non-zero on the first crash.
#
#   fuzz/smoke.sh [seconds]        e.g. fuzz/smoke.sh 60
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). On a stable toolchain RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz use the nightly-only sanitizer flags; on nightly it is harmless.
set -euo pipefail

secs="${1:-10}"
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

cargo fuzz build
for target in $(cargo fuzz list); do
    echo "== ${target} (${secs}s)"
    mkdir -p "corpus/${target}"
    log="$(mktemp)"
    status=0
    cargo fuzz run "${target}" "corpus/${target}" -- -max_total_time="${secs}" -print_final_stats=1 >"${log}" 2>&1 \
        || status=$?
    grep -E '^(Done|stat::number_of_executed_units)' "${log}" || true
    if [ "${status}" -ne 0 ]; then
        tail -n 40 "${log}" >&2
        rm -f "${log}"
        echo "${target}: failed (exit ${status}); the crashing input is in fuzz/artifacts/${target}/" >&2
        exit 1
    fi
    rm -f "${log}"
done
echo "all fuzz targets ran ${secs}s without a crash"
