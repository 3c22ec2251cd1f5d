//! The hypercore family: signed append-only logs and their replication ([`hypercore`]), the B-tree on a
//! core ([`hyperbee`]), blobs in a core ([`hyperblobs`]) and named cores derived from one primary key
//! ([`corestore`]). Replication runs over any protomux stream; finding peers is the DHT layer's job.

pub mod corestore;
pub mod hyperbee;
pub mod hyperblobs;
pub mod hypercore;

// The layers below, under the names this crate's modules use (`crate::protomux::...`).
use holepunch_streams::{protomux, secret_stream};
use holepunch_wire::{compact_encoding, crypto, flat_tree};
