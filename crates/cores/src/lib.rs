//! The hypercore family: signed append-only logs and their replication ([`hypercore`]), the B-tree on a
//! core ([`hyperbee`]), blobs in a core ([`hyperblobs`]) and named cores derived from one primary key
//! ([`corestore`]). Replication runs over any protomux stream; finding peers is the DHT layer's job.
//!
//! The main types are re-exported here: [`Hypercore`], [`Hyperbee`], [`Hyperblobs`] and [`Corestore`].
//! Hypercore's public submodules are its wire messages, proofs, storage and replication; block encryption
//! and the remote-bitfield set are private.

#![warn(unnameable_types)]

pub mod autobase;
pub mod corestore;
pub mod hyperbee;
pub mod hyperblobs;
pub mod hypercore;

pub use corestore::Corestore;
pub use hyperbee::Hyperbee;
pub use hyperblobs::Hyperblobs;
pub use hypercore::Hypercore;

// The layers below, under the names this crate's modules use (`crate::protomux::...`).
use holepunch_streams::{protomux, protomux_wakeup, secret_stream};
use holepunch_wire::{compact_encoding, crypto, flat_tree};
