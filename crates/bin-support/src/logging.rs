//! Diagnostics: only when `RUST_LOG` asks for them, and on stderr, so stdout stays the tool's output (what
//! the JS twins print, which tests and scripts read).

/// Sets up `tracing` output to stderr filtered by `RUST_LOG` (`RUST_LOG=debug`, `RUST_LOG=holepunch_udx=trace`;
/// `holepunch=debug` matches every library crate, as targets match by prefix) when the variable is set; does
/// nothing otherwise. Returns whether logging is on. Call it once, early in `main`.
pub fn init() -> bool {
    if std::env::var_os("RUST_LOG").is_none() {
        return false;
    }
    // `try_init`: a second call (or another subscriber already set) leaves the first one in place.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok()
}
