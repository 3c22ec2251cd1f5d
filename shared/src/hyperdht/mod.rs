//! Compatibility with the JavaScript `hyperdht` package (6.x): its wire messages and constants, and the
//! storage a persistent node serves ([`persistent`]), and the bootstrap list every tool takes ([`bootstrap`]).

pub mod bootstrap;
pub mod constants;
pub mod messages;
pub mod persistent;
