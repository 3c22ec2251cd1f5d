//! Compatibility with the JavaScript `dht-rpc` package (6.x): the Kademlia RPC layer HyperDHT builds on.
//!
//! * [`messages`] — the request/response datagram codec;
//! * [`peer`] — node ids and request tokens;
//! * [`routing_table`] — `kademlia-routing-table`;
//! * [`NatSampler`] — `nat-sampler`;
//! * [`Health`] — the online / degraded / offline estimate;
//! * [`node`] — the sans-IO node ([`Dht`]: requests, queries, bootstrap, maintenance);
//! * [`driver`] — a tokio driver running a [`Dht`] over two UDP sockets ([`DhtHandle`]);
//! * [`interfaces`] — watching the machine's interface addresses (the `network-change` source);
//! * [`RequestHandler`] — what a protocol built on dht-rpc answers its commands with.
//!
//! Bootstrap-node lists (`host:port`, `suggested-ip@host:port`) are parsed and resolved in a private module,
//! re-exported by [`crate::hyperdht::bootstrap`]; the congestion window and request timing are private too.

pub(crate) mod bootstrap;
pub mod driver;
pub(crate) mod handler;
pub(crate) mod hash;
mod health;
pub mod interfaces;
mod io;
pub mod messages;
mod nat_sampler;
pub mod node;
pub mod peer;
pub mod routing_table;
pub(crate) mod wire_enum;

pub use driver::DhtHandle;
pub use handler::{Handled, RequestHandler, Responder};
pub use health::Health;
pub use nat_sampler::NatSampler;
pub use node::{Config, Dht};
