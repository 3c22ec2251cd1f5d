//! The `autobase-kv` package's tests, run against its built binary (`CARGO_BIN_EXE_autobase-kv`).
//!
//! One test binary for the package (`autotests = false` in its Cargo.toml): each file below is a module.

mod cli;
