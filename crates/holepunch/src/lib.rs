//! The Holepunch peer-to-peer stack in Rust, speaking the same wire protocols as the JavaScript modules.
//!
//! This crate is a facade: each module is re-exported from the crate of its layer, under the name of the JS
//! module it is compatible with. From the bottom up (a crate depends only on crates below it):
//!
//! | layer | crate | modules |
//! |---|---|---|
//! | wire codecs and crypto | `holepunch-wire` | [`compact_encoding`], [`crypto`], [`flat_tree`], [`base32`], [`z32`], [`id_encoding`] |
//! | transport | `holepunch-udx` | [`udx`] |
//! | streams | `holepunch-streams` | [`noise`], [`secret_stream`], [`protomux`], [`protomux_wakeup`] |
//! | DHT | `holepunch-dht` | [`dht_rpc`], [`hyperdht`], [`blind_relay`], [`hyperswarm`], [`lan_discovery`] |
//! | cores | `holepunch-cores` | [`hypercore`], [`hyperbee`], [`hyperblobs`], [`corestore`], [`autobase`] |
//! | drives | `holepunch-drives` | [`drive`], [`localdrive`], [`hyperdrive`], [`mirror`], [`mirror_state`] |
//! | apps | `holepunch-hypershell` | [`hypershell`] |

pub use holepunch_cores::{autobase, corestore, hyperbee, hyperblobs, hypercore};
pub use holepunch_dht::{blind_relay, dht_rpc, hyperdht, hyperswarm, lan_discovery};
pub use holepunch_drives::{drive, hyperdrive, localdrive, mirror, mirror_state};
pub use holepunch_hypershell as hypershell;
pub use holepunch_streams::{noise, protomux, protomux_wakeup, secret_stream};
pub use holepunch_udx as udx;
pub use holepunch_wire::{base32, compact_encoding, crypto, flat_tree, id_encoding, z32};
