//! The plumbing every tool's `main` shares, so that each tool has it once and all behave alike:
//!
//! - [`bootstrap`]: the `--bootstrap HOST:PORT[,HOST:PORT...]` flag (a clap `Args` struct to flatten), the
//!   `HYPERDHT_BOOTSTRAP` fallback, the public nodes by default, and the one call of the library's resolver;
//! - [`relay`]: the `--relay KEY` flag and the `HYPERDHT_RELAY` fallback (a blind relay to pair through), and
//!   `HYPERDHT_DEBUG`'s report of each connection's path;
//! - [`signals`]: SIGINT/SIGTERM (and SIGHUP where a tool wants it), telling which one came;
//! - [`logging`]: `RUST_LOG` diagnostics on stderr;
//! - [`runtime`]: the tokio runtime (one thread, a fixed pool, or a size from an environment variable);
//! - [`exit`]: errors to exit codes (0 ok, 1 runtime error with one line on stderr, 2 usage, 128 + signal);
//! - [`limits`]: the open-files limit raised for tools that keep many files open.

pub mod bootstrap;
pub mod exit;
pub mod limits;
pub mod logging;
pub mod relay;
pub mod runtime;
pub mod signals;

pub use exit::{Killed, Report};
pub use signals::{Signal, Signals};
