//! Compatibility with the JavaScript `dht-rpc` package (6.x): the Kademlia RPC layer HyperDHT builds on.
//!
//! * [`messages`]: the request/response datagram codec;
//! * [`peer`]: node ids and request tokens;
//! * [`routing_table`]: `kademlia-routing-table`;
//! * [`nat_sampler`]: `nat-sampler`.

pub(crate) mod hash;
pub mod messages;
pub mod nat_sampler;
pub mod peer;
pub mod routing_table;
