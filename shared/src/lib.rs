//! The Holepunch peer-to-peer stack in Rust, speaking the same wire protocols as the JavaScript modules.
//!
//! Modules are named after the JS packages they are compatible with.

pub mod base32;
pub mod blind_relay;
pub mod compact_encoding;
pub mod corestore;
pub mod crypto;
pub mod dht_rpc;
pub mod flat_tree;
pub mod hyperbee;
pub mod hyperblobs;
pub mod hypercore;
pub mod hyperdht;
pub mod hyperdrive;
pub mod hypershell;
pub mod hyperswarm;
pub mod id_encoding;
pub mod localdrive;
pub mod mirror;
pub mod noise;
pub mod protomux;
pub mod secret_stream;
pub mod udx;
pub mod z32;
