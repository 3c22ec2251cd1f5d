//! Everything that needs node: each test runs the pinned JS reference packages (tests/interop/node_modules) against the Rust implementation, in both roles where both exist.
//!
//! One test binary for the whole crate (`autotests = false` in its Cargo.toml): each file below is a module.

mod autobase_apply;
mod autobase_fixture;
mod autobase_kv_interop;
mod autobase_linearizer;
mod autobase_topolist;
mod blind_relay_interop;
#[path = "../../../../crates/wire/tests/it/common.rs"]
mod common;
mod compact_encoding_interop;
mod dht_rpc_interop;
mod drives_js_store;
mod drives_mount_js;
mod harness;
mod hyperbee_interop;
mod hyperbee_watch_js;
mod hypercore_cat;
mod hypercore_interop;
mod hypercore_multisig_interop;
mod hypercore_replicate_interop;
mod hypercore_seeders_interop;
mod hypercore_want_interop;
mod hyperdht_connect_interop;
mod hyperdht_holepunch_interop;
mod hyperdht_interop;
mod hyperdht_ipv6_interop;
mod hyperdrive_cdc_interop;
mod hyperdrive_clear_interop;
mod hyperdrive_encrypted_interop;
mod hyperdrive_interop;
mod hyperswarm_interop;
mod ipv6_lab;
mod network_change_lab;
mod protomux_diff;
mod protomux_interop;
mod protomux_wakeup_interop;
mod rng;
mod secret_stream_interop;
mod text_codecs_interop;
mod udx_interop;
mod udx_vectors;
mod vectors_fresh;
