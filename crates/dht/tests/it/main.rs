//! The DHT crate's tests: dht-rpc and hyperdht messages against committed vectors, the sans-IO node on a simulated network, and the tokio driver on loopback.
//!
//! One test binary for the whole crate (`autotests = false` in its Cargo.toml): each file below is a module.

mod dht_decode_robustness;
mod dht_roundtrip;
mod dht_rpc_driver;
mod dht_rpc_handler;
mod dht_rpc_sim;
mod dht_table_vectors;
mod dht_vectors;
mod dht_wire_enums;
mod hyperdht_connect_burst;
mod hyperdht_ipv6;
mod hyperdht_network_change;
mod hyperswarm_restart;
mod lan_discovery;
mod testnet;
