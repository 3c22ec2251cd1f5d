//! `hypertele`: connects local TCP (or Unix socket) clients to a hypertele-server over HyperDHT. See
//! `hypertele --help`.
//!
//! Exit codes: 0 after SIGINT/SIGTERM, 1 on an error (one `Error: ...` line on stderr), 2 on bad usage.

use std::process::ExitCode;

use clap::Parser;
use holepunch::hyperdht::bootstrap;
use hypertele_tool::cli::{choose_bootstrap, client_command, ClientCli};
use hypertele_tool::client::{run, ClientConfig};
use hypertele_tool::config::resolve_host;

fn main() -> ExitCode {
    let cli = ClientCli::parse();
    hypertele_tool::init_logging();
    let nodes = match choose_bootstrap(
        client_command(),
        cli.bootstrap.as_ref(),
        std::env::var_os(bootstrap::ENV),
    ) {
        Ok(b) => b,
        Err(e) => e.exit(),
    };
    let cfg = match ClientConfig::from_cli(&cli, resolve_host) {
        Ok(cfg) => cfg,
        Err(e) => return fail(&e.into()),
    };
    let runtime = match hypertele_tool::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    let result = runtime.block_on(async {
        let bootstrap = bootstrap::resolve(&nodes).await?;
        run(cfg, bootstrap).await
    });
    runtime.shutdown_timeout(hypertele_tool::CLOSE_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("Error: {e:#}");
    ExitCode::FAILURE
}
