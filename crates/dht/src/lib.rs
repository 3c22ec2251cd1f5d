//! The DHT layer: the Kademlia RPC node ([`dht_rpc`]), HyperDHT's servers and connections by public key with
//! NAT holepunching ([`hyperdht`]), relaying a connection through a third peer ([`blind_relay`]) and topics
//! with one connection per peer ([`hyperswarm`]). Connections are [`SecretStream`](holepunch_streams::secret_stream::SecretStream)s over
//! UDX streams.
//!
//! Each of the four modules keeps its internals in private submodules and re-exports the types it offers;
//! the public submodules are wire formats (`messages`, `constants`, `peer`), the sans-IO and driver halves of
//! a dht-rpc node (`node`, `driver`, `routing_table`) and the handshake pieces the fuzzers drive
//! (`noise_wrap`, `holepuncher`). The types most users start from are re-exported here: [`HyperDht`],
//! [`Server`], [`Hyperswarm`] and the dht-rpc [`Dht`].

#![warn(unnameable_types)]

pub mod blind_relay;
pub mod dht_rpc;
pub mod hyperdht;
pub mod hyperswarm;
pub mod lan_discovery;

pub use dht_rpc::Dht;
pub use hyperdht::{HyperDht, Server};
pub use hyperswarm::Hyperswarm;

// The layers below, under the names this crate's modules use (`crate::udx::...`).
use holepunch_streams::{noise, protomux, secret_stream};
use holepunch_udx as udx;
use holepunch_wire::{compact_encoding, crypto};
