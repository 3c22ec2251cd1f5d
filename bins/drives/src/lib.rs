//! The `drives` tool's command line, as a library so that man pages and shell completions are generated
//! from the same definition (`cargo run -p xtask -- gen-docs`), plus the pieces of the tool worth testing
//! on their own (storage lookup, filters, byte sizes, HTTP ranges).

pub mod cli;
pub mod util;
