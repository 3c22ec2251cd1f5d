//! Drives: the drive interface ([`drive`]: the `Drive` trait, its entry and error types), folders as drives
//! ([`localdrive`]), hyperdrives ([`hyperdrive`]: entries in a hyperbee, content in hyperblobs) and
//! mirror-drive's algorithm between any two ([`mirror`], with its quick check: [`mirror_state`]).

pub mod drive;
pub mod hyperdrive;
pub mod localdrive;
pub mod mirror;
pub mod mirror_state;

// The layers below, under the names this crate's modules use (`crate::hypercore::...`).
use holepunch_cores::{corestore, hyperbee, hyperblobs, hypercore};
use holepunch_streams::{protomux, secret_stream};
use holepunch_wire::crypto;
