//! The streams crate's tests: Noise, secret-stream and protomux against committed vectors from the JS packages, robustness against hostile bytes, and the async mux.
//!
//! One test binary for the whole crate (`autotests = false` in its Cargo.toml): each file below is a module.

mod noise_vectors;
mod protomux_async;
mod protomux_core;
mod protomux_race;
mod protomux_vectors;
mod secret_stream_in_place;
mod secret_stream_robustness;
mod secret_stream_vectors;
