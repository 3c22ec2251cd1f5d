//! The UDX crate's tests: the sans-IO stream on a simulated network (loss, reordering, latency on a virtual clock) and packet-level edge cases.
//!
//! One test binary for the whole crate (`autotests = false` in its Cargo.toml): each file below is a module.

mod udx_endpoint;
mod udx_in_place;
mod udx_ipv6;
mod udx_sim;
mod udx_stream;
