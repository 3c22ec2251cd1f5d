//! Compatibility with the JavaScript `hyperdht` package (6.x): its wire messages and constants, and the
//! storage a persistent node serves ([`persistent`]), and the node itself ([`dht`]: [`HyperDht`] with its
//! servers and connections, on UDX sockets), with the IK handshake wrapper ([`noise_wrap`]) and the holepunch
//! payload encryption ([`secure_payload`]), NAT holepunching ([`nat`] analysis and the sans-IO [`holepuncher`],
//! driven by the node over sockets of their own), and the bootstrap list every tool takes ([`bootstrap`]).

pub mod bootstrap;
pub mod constants;
pub mod dht;
pub mod holepuncher;
pub mod messages;
pub mod nat;
pub mod noise_wrap;
pub mod persistent;
pub mod secure_payload;
mod socket_pool;

pub use dht::{
    ConnectOpts, Connection, ConnectionPath, HyperDht, HyperDhtError, HyperDhtOpts, LookupResult,
    RelayThrough, Server,
};
