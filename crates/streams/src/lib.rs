//! Encrypted streams and the channels over them: Noise handshakes with Ed25519 as the DH function
//! ([`noise`]), the secret-stream framing and encryption ([`secret_stream`]) and many message channels over
//! one stream ([`protomux`]), with the `wakeup` protocol autobase runs over it ([`protomux_wakeup`]).
//! Transport-agnostic: a secret-stream runs over any byte stream (a UDX stream
//! from the DHT layer above, TCP, or memory).
//!
//! The modules are public (the facade crate re-exports them under these names); inside protomux only
//! the frame codec ([`protomux::wire`]) is a public module, the rest is re-exported by type. The types most
//! users start from are re-exported here: [`SecretStream`], [`Mux`], [`Channel`] and [`MuxCore`].

#![warn(unnameable_types)]

pub mod noise;
pub mod protomux;
pub mod protomux_wakeup;
pub mod secret_stream;

pub use protomux::{Channel, Mux, MuxCore};
pub use secret_stream::SecretStream;

// The layer below, under the names this crate's modules use (`crate::compact_encoding::...`).
use holepunch_wire::{compact_encoding, crypto};
