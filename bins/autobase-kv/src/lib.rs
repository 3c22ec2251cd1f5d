//! The `autobase-kv` tool's command line, as a library so that man pages and shell completions are generated
//! from the same definition (`cargo run -p xtask -- gen-docs`).

pub mod cli;
