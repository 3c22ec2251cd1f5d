//! The Holepunch peer-to-peer stack in Rust, speaking the same wire protocols as the JavaScript modules.
//!
//! Modules are named after the JS packages they are compatible with.

pub mod compact_encoding;
pub mod udx;
