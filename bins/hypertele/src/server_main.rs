//! `hypertele-server`: exposes a local TCP service (or Unix socket) to HyperDHT peers. See
//! `hypertele-server --help`.
//!
//! Exit codes: 0 after SIGINT/SIGTERM, 1 on an error (one `Error: ...` line on stderr), 2 on bad usage.

use std::process::ExitCode;

use bin_support::bootstrap;
use clap::Parser;
use hypertele_tool::cli::{server_command, ServerCli};
use hypertele_tool::server::{run, ServerConfig};
use hypertele_tool::{REPORT, RUNTIME, SHUTDOWN};

fn main() -> ExitCode {
    let cli = ServerCli::parse();
    bin_support::logging::init();
    let nodes = match cli.net.nodes_or_usage(server_command()) {
        Ok(b) => b,
        Err(e) => e.exit(),
    };
    let relay = match cli.relay.key_or_usage(server_command()) {
        Ok(r) => r,
        Err(e) => e.exit(),
    };
    let mut cfg = match ServerConfig::from_cli(&cli) {
        Ok(cfg) => cfg,
        Err(e) => return REPORT.fail(&e.into()),
    };
    cfg.relay = relay;
    REPORT.exit(bin_support::runtime::run(RUNTIME, SHUTDOWN, async {
        let bootstrap = bootstrap::resolve(&nodes).await?;
        run(cfg, bootstrap).await
    }))
}
