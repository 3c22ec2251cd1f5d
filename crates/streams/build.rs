//! `cfg(holepunch_openssl)`: the secret stream takes ChaCha20 and Poly1305 from OpenSSL's libcrypto. On with the
//! `openssl` feature, unless `HOLEPUNCH_BUILD_NO_OPENSSL` is set at build time: `scripts/release.sh` sets it for
//! its statically linked binaries, which libcrypto's static archive (its whole provider machinery, ~4.6 MB)
//! would otherwise push past their size budget. Then nothing of libcrypto is referenced, so nothing is linked.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(holepunch_openssl)");
    println!("cargo::rerun-if-env-changed=HOLEPUNCH_BUILD_NO_OPENSSL");
    let feature = std::env::var_os("CARGO_FEATURE_OPENSSL").is_some();
    let opted_out =
        std::env::var_os("HOLEPUNCH_BUILD_NO_OPENSSL").is_some_and(|v| !v.is_empty() && v != "0");
    if feature && !opted_out {
        println!("cargo::rustc-cfg=holepunch_openssl");
    }
}
