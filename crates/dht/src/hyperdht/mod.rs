//! Compatibility with the JavaScript `hyperdht` package (6.x): its wire messages and constants, and the
//! storage a persistent node serves ([`Persistent`], served by a dht-rpc node through [`ServeHyperdht`]), and
//! the node itself ([`HyperDht`] with its [`Server`]s and [`Connection`]s, on UDX sockets), with the IK
//! handshake wrapper ([`noise_wrap`]) and the holepunch payload encryption ([`SecurePayload`]), NAT
//! holepunching ([`Nat`] analysis and the sans-IO [`holepuncher`], driven by the node over sockets of their
//! own), and the bootstrap list every tool takes ([`bootstrap`]).
//!
//! Public modules: [`messages`] and [`constants`] (the wire format), [`noise_wrap`] and [`holepuncher`]
//! (sans-IO protocol pieces the fuzzers and interop tests drive) and [`bootstrap`]. The node, the persistent
//! store and NAT analysis live in private modules; their types are re-exported here.

pub mod bootstrap;
pub mod constants;
pub(crate) mod dht;
pub mod holepuncher;
mod in_place;
pub mod ipv6;
pub mod messages;
mod nat;
pub mod noise_wrap;
mod persistent;
mod secure_payload;
mod socket_pool;

pub use crate::dht_rpc::driver::NetworkEvent;
pub use dht::{
    ConnectOpts, Connection, ConnectionPath, HyperDht, HyperDhtError, HyperDhtOpts, LookupResult,
    RelayThrough, Server,
};
pub use dht::{
    FirewallFn, MutableValue, CONNECTION_KEEP_ALIVE, HANDSHAKE_CLEAR_WAIT,
    HANDSHAKE_INITIAL_TIMEOUT, RELAY_KEEP_ALIVE,
};
pub use nat::{Nat, MIN_SAMPLES};
pub use persistent::{Answer, CacheOpts, Forward, Persistent, ServeHyperdht};
pub use secure_payload::SecurePayload;
