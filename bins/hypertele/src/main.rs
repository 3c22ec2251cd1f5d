//! `hypertele`: connects local TCP (or Unix socket) clients to a hypertele-server over HyperDHT. See
//! `hypertele --help`.
//!
//! Exit codes: 0 after SIGINT/SIGTERM, 1 on an error (one `Error: ...` line on stderr), 2 on bad usage.

use std::process::ExitCode;

use bin_support::bootstrap;
use clap::Parser;
use hypertele_tool::cli::{client_command, ClientCli};
use hypertele_tool::client::{run, ClientConfig};
use hypertele_tool::config::resolve_host;
use hypertele_tool::{REPORT, RUNTIME, SHUTDOWN};

fn main() -> ExitCode {
    let cli = ClientCli::parse();
    bin_support::logging::init();
    let nodes = match cli.net.nodes_or_usage(client_command()) {
        Ok(b) => b,
        Err(e) => e.exit(),
    };
    let relay = match cli.relay.key_or_usage(client_command()) {
        Ok(r) => r,
        Err(e) => e.exit(),
    };
    let mut cfg = match ClientConfig::from_cli(&cli, resolve_host) {
        Ok(cfg) => cfg,
        Err(e) => return REPORT.fail(&e.into()),
    };
    cfg.relay = relay;
    REPORT.exit(bin_support::runtime::run(RUNTIME, SHUTDOWN, async {
        let bootstrap = bootstrap::resolve(&nodes).await?;
        run(cfg, bootstrap).await
    }))
}
