//! The `hyperbeam` package's tests, run against its built binaries (`CARGO_BIN_EXE_*`).
//!
//! One test binary for the package (`autotests = false` in its Cargo.toml): each file below is a module.

mod cli;
mod lan_lab;
mod nat_lab;
mod tty;
