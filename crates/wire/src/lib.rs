//! The bottom layer of the Holepunch stack: the codecs every wire message is written in and the crypto every
//! layer above signs, hashes and derives keys with. Modules are named after the JS modules they are compatible
//! with.
//!
//! Public surface: one module per JS module; each is public (the facade crate re-exports them under these
//! names) and has no public submodules.

pub mod base32;
pub mod compact_encoding;
pub mod crypto;
pub mod flat_tree;
pub mod id_encoding;
pub mod z32;
