//! The cores crate's tests: hypercore (API, storage crash safety, replication in memory, want/unwant), hyperbee and corestore, against committed vectors from the JS packages and property tests.
//!
//! One test binary for the whole crate (`autotests = false` in its Cargo.toml): each file below is a module.

mod autobase_base;
mod autobase_crash;
mod autobase_encrypted;
mod autobase_encryption_vectors;
mod autobase_network;
mod autobase_optimistic;
mod autobase_props;
mod corestore_vectors;
mod crash_blocks;
mod hyperbee_props;
mod hyperbee_watch;
mod hypercore_api;
mod hypercore_atomic;
mod hypercore_checkpoint;
mod hypercore_crash;
mod hypercore_multisig;
mod hypercore_props;
mod hypercore_replicate;
mod hypercore_replicate_effects;
mod hypercore_replicate_props;
mod hypercore_vectors;
mod hypercore_want;
