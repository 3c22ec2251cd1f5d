//! The DHT layer: the Kademlia RPC node ([`dht_rpc`]), HyperDHT's servers and connections by public key with
//! NAT holepunching ([`hyperdht`]), relaying a connection through a third peer ([`blind_relay`]) and topics
//! with one connection per peer ([`hyperswarm`]). Connections are [`SecretStream`](holepunch_streams::secret_stream::SecretStream)s over
//! UDX streams.

pub mod blind_relay;
pub mod dht_rpc;
pub mod hyperdht;
pub mod hyperswarm;

// The layers below, under the names this crate's modules use (`crate::udx::...`).
use holepunch_streams::{noise, protomux, secret_stream};
use holepunch_udx as udx;
use holepunch_wire::{compact_encoding, crypto};
