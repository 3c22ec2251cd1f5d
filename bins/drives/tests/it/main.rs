//! The `drives` package's tests, run against its built binaries (`CARGO_BIN_EXE_*`).
//!
//! One test binary for the package (`autotests = false` in its Cargo.toml): each file below is a module.

mod cdc;
mod cli;
mod common;
mod crash;
mod encrypted_cli;
mod enospc;
mod js_interop;
mod mirror_live;
mod mount;
mod safety;
mod seed_many;
mod seed_screen;
mod serve_browser;
mod serve_checkout;
