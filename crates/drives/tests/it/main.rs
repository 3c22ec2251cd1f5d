//! The drives crate's tests: hyperdrive against hostile peers and stores, clear, and mirroring between drives and folders.
//!
//! One test binary for the whole crate (`autotests = false` in its Cargo.toml): each file below is a module.

mod cdc;
mod encrypted;
mod hypercore_clear;
mod hyperdrive_hostile;
mod mirror_download;
mod mirror_scale;
mod mirror_stream;
