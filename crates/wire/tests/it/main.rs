//! The wire crate's tests: compact-encoding, crypto, z-base32/base32/ids, against committed vectors from the JS packages and property tests.
//!
//! One test binary for the whole crate (`autotests = false` in its Cargo.toml): each file below is a module.

mod common;
mod compact_encoding_props;
mod compact_encoding_vectors;
mod crypto_props;
mod crypto_vectors;
mod id_base32_props;
