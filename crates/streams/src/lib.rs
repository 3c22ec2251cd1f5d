//! Encrypted streams and the channels over them: Noise handshakes with Ed25519 as the DH function
//! ([`noise`]), the secret-stream framing and encryption ([`secret_stream`]) and many message channels over
//! one stream ([`protomux`]). Transport-agnostic: a secret-stream runs over any byte stream (a UDX stream
//! from the DHT layer above, TCP, or memory).

pub mod noise;
pub mod protomux;
pub mod secret_stream;

// The layer below, under the names this crate's modules use (`crate::compact_encoding::...`).
use holepunch_wire::{compact_encoding, crypto};
