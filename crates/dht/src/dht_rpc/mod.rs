//! Compatibility with the JavaScript `dht-rpc` package (6.x): the Kademlia RPC layer HyperDHT builds on.
//!
//! * [`messages`] — the request/response datagram codec;
//! * [`bootstrap`] — bootstrap-node lists (`host:port`, `suggested-ip@host:port`), parsed and resolved;
//! * [`peer`] — node ids and request tokens;
//! * [`routing_table`] — `kademlia-routing-table`;
//! * [`nat_sampler`] — `nat-sampler`;
//! * [`io`] — congestion window and request timing;
//! * [`health`] — the online / degraded / offline estimate;
//! * [`node`] — the sans-IO node (requests, queries, bootstrap, maintenance);
//! * [`driver`] — a tokio driver running a [`node::Dht`] over two UDP sockets;
//! * [`handler`] — the [`handler::RequestHandler`] a protocol built on dht-rpc answers its commands with.

pub mod bootstrap;
pub mod driver;
pub mod handler;
pub(crate) mod hash;
pub mod health;
pub mod io;
pub mod messages;
pub mod nat_sampler;
pub mod node;
pub mod peer;
pub mod routing_table;
pub(crate) mod wire_enum;
