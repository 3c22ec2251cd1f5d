#!/usr/bin/env bash
# Release binaries of every tool (each [[bin]] of the packages in bins/) into dist/, with dist/SHA256SUMS, then a
# table of name, size and sha256.
#
# Profile `dist` (Cargo.toml): release without line tables, stripped, fat LTO, one codegen unit; the release
# profile the tests and benchmarks use is unchanged.
#
# On *-linux-gnu the binaries link glibc statically (-C target-feature=+crt-static; --target keeps build scripts and
# proc-macros dynamic): they load no shared library, not even libc. Name resolution still works in them: since
# glibc 2.34 the `files` and `dns` NSS modules are part of libc itself, so getaddrinfo (bootstrap host names,
# `--bootstrap localhost:PORT`) reads /etc/hosts and /etc/resolv.conf with no libnss_*.so loaded (getpwuid,
# which portable-pty may call for the login shell, reads /etc/passwd the same way).
# Checked with Debian's glibc 2.36: hyperdht and hyperbeam resolve `localhost` and a name from /etc/hosts, also in a
# chroot holding only the binary and /etc/hosts, with or without an nsswitch.conf naming a module that is absent
# there (mdns4_minimal: skipped). A module that is installed (mdns, systemd, sss, ldap in nsswitch.conf) is loaded
# and must come from the glibc version the binary was linked with; where that bites, build with STATIC=0 for
# binaries dynamically linked to the system's glibc.
#
# Needs cargo, python3 (reads `cargo metadata`) and sha256sum. TARGET=triple builds for another target.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
max_bytes=$((8 * 1000 * 1000))

target=${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
linking="dynamically linked"
if [ "${STATIC:-1}" = 1 ] && [[ $target == *-linux-gnu ]]; then
  export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
  # The secret stream's ChaCha20-Poly1305 from OpenSSL's libcrypto (holepunch-streams feature `openssl`) would
  # link libcrypto's static archive, ~4.6 MB more per binary (past the size budget below): static binaries use
  # the RustCrypto code unless OPENSSL=1. OPENSSL_STATIC: openssl-sys links its archives, not libcrypto.so.3.
  if [ "${OPENSSL:-0}" != 1 ]; then
    export HOLEPUNCH_BUILD_NO_OPENSSL=1
  fi
  export OPENSSL_STATIC="${OPENSSL_STATIC:-1}"
  linking="statically linked"
fi

# "package bin" for each binary of the packages in bins/.
mapfile -t pairs < <(cargo metadata --no-deps --format-version 1 --locked | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if os.path.basename(os.path.dirname(os.path.dirname(p["manifest_path"]))) == "bins":
        for t in p["targets"]:
            if "bin" in t["kind"]:
                print(p["name"], t["name"])
')
[ ${#pairs[@]} -gt 0 ] || { echo "release.sh: no binaries found in bins/" >&2; exit 1; }
packages=() bins=()
for pair in "${pairs[@]}"; do
  read -r package bin <<<"$pair"
  [[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
  bins+=("$bin")
done

cargo build --locked --profile dist --target "$target" "${packages[@]/#/--package=}" --bins

out=${CARGO_TARGET_DIR:-target}/$target/dist
rm -rf dist
mkdir dist
for bin in "${bins[@]}"; do
  cp "$out/$bin" dist/
done

# Each one runs with an empty environment, stays under the size limit, and (static) loads no shared library.
failed=0
for bin in "${bins[@]}"; do
  if ! env -i "./dist/$bin" --version >/dev/null; then
    echo "release.sh: dist/$bin --version failed" >&2
    failed=1
  fi
  if [ "$(stat -c %s "dist/$bin")" -gt "$max_bytes" ]; then
    echo "release.sh: dist/$bin is larger than $max_bytes bytes" >&2
    failed=1
  fi
  if [ "$linking" = "statically linked" ] && ldd "dist/$bin" 2>&1 | grep -q '=>'; then
    echo "release.sh: dist/$bin links shared libraries:" >&2
    ldd "dist/$bin" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1

(cd dist && sha256sum "${bins[@]}" >SHA256SUMS)
echo
echo "dist/ ($target, $linking), built in $((SECONDS - start))s:"
printf '%-20s %10s  %s\n' name bytes sha256
while read -r sum bin; do
  printf '%-20s %10s  %s\n' "$bin" "$(stat -c %s "dist/$bin")" "$sum"
done <dist/SHA256SUMS
