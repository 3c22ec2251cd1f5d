//! Compatibility with the JavaScript `hyperdht` package (6.x): its wire messages and constants.

pub mod constants;
pub mod messages;
