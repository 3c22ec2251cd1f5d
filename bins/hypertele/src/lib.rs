//! `hypertele` and `hypertele-server`: a TCP (or Unix socket) proxy over HyperDHT, compatible with the
//! JavaScript hypertele 1.1.4 bins.
//!
//! - [`cli`]: the command lines (clap), also rendered into man pages and completions by xtask;
//! - [`config`]: the configuration, identity and `.hyper-hosts` files;
//! - [`pipe`]: one local connection piped to one HyperDHT connection (half-close, `--compress`);
//! - [`server`]: the server (announces a key pair, pipes every peer to the service);
//! - [`client`]: the client proxy (listens locally, one HyperDHT connection per local connection), which
//!   `hyperssh` reuses.

pub mod cli;
pub mod client;
pub mod config;
pub mod pipe;
pub mod server;

use std::time::Duration;

pub use bin_support::bootstrap::bind_host;
use bin_support::runtime::{Flavor, Shutdown};
use bin_support::Report;

/// How long closing the server and the node may take at exit.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often `--debug` prints the connection counts (as the JS).
pub const DEBUG_INTERVAL: Duration = Duration::from_secs(5);

/// The environment variable that gives the bins (and hyperssh) a multi-threaded runtime with that many
/// worker threads ([`RUNTIME`]).
pub const THREADS_ENV: &str = "HYPERTELE_THREADS";

/// The runtime the bins (and hyperssh) run on: one thread, unless `HYPERTELE_THREADS=N` (N > 1) asks for
/// a multi-threaded one. A proxy's work per byte is a chain (read, seal, queue, send; receive, open,
/// write) whose steps hand data from task to task; on one thread those hand-offs are plain queue pushes,
/// while a multi-threaded runtime wakes a parked worker for many of them (futex calls, context switches,
/// cache lines moving between cores). Measured with `benches/hypertele.sh` on a loaded 2-core machine: about
/// 15% less CPU per byte for the pair than tokio's default multi-threaded runtime. Many busy connections
/// on an otherwise idle many-core machine may go faster with more threads.
pub const RUNTIME: Flavor = Flavor::ThreadsFromEnv(THREADS_ENV);

/// How the bins (and hyperssh) shut their runtime down: connections get [`CLOSE_TIMEOUT`] to close.
pub const SHUTDOWN: Shutdown = Shutdown::Timeout(CLOSE_TIMEOUT);

/// Runtime errors: `Error: <message>` (the bins and hyperssh).
pub const REPORT: Report = Report::new("Error: ");
