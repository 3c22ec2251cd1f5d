//! `hyperssh`: ssh to a `hypertele-server` over HyperDHT. See `hyperssh --help`.
//!
//! Exit codes: ssh's own; 1 on an error before ssh runs (one `Error: ...` line on stderr), 2 on bad usage.

use std::process::ExitCode;

use anyhow::Context;
use bin_support::bootstrap;
use bin_support::Signals;
use clap::Parser;
use hyperssh_cli::cli::{ssh_args, Cli};
use hyperssh_cli::{current_user, proxy_config};
use hypertele_tool::client::{ClientConfig, Proxy};
use hypertele_tool::config::ConfigError;
use hypertele_tool::{REPORT, RUNTIME, SHUTDOWN};

/// The port `--rdp` listens on (the default RDP port).
const RDP_PORT: u16 = 3389;

fn main() -> ExitCode {
    let cli = Cli::parse();
    bin_support::logging::init();
    let nodes = match cli.net.nodes() {
        Ok(b) => b,
        Err(e) => {
            // A usage error, but reported in the tool's own words (as before bin-support).
            eprintln!("Error: {}: {e}", bootstrap::ENV);
            return ExitCode::from(bin_support::exit::USAGE);
        }
    };
    let relay = match cli.relay.key() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(bin_support::exit::USAGE);
        }
    };
    let mut cfg = match config(&cli) {
        Ok(cfg) => cfg,
        Err(e) => return REPORT.fail(&e.into()),
    };
    cfg.relay = relay;
    cfg.lan = cli.net.lan();
    REPORT.exit(bin_support::runtime::run(
        RUNTIME,
        SHUTDOWN,
        run(&cli, cfg, nodes),
    ))
}

fn config(cli: &Cli) -> Result<ClientConfig, ConfigError> {
    proxy_config(
        &cli.server,
        cli.identity.as_deref(),
        if cli.rdp { RDP_PORT } else { 0 },
    )
}

async fn run(
    cli: &Cli,
    cfg: ClientConfig,
    nodes: Vec<bootstrap::BootstrapNode>,
) -> anyhow::Result<u8> {
    let bootstrap = bootstrap::resolve(&nodes).await?;
    let proxy = Proxy::bind(&cfg, bootstrap).await?;
    if cli.rdp {
        println!("Client listening on port {RDP_PORT} (default RDP port)\nOpen your RDP client and connect to localhost");
        let mut interrupt = Signals::listen()?;
        let result = tokio::select! {
            r = proxy.serve() => r,
            _ = interrupt.recv() => Ok(()),
        };
        proxy.close().await;
        return result.map(|()| 0);
    }
    let port = proxy
        .local_addr()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .context("the local proxy has no port")?;
    let user = cli.user.clone().unwrap_or_else(current_user);
    let args = ssh_args(&user, port, &cli.ssh_options, cli.command.as_deref());
    let mut ssh = tokio::process::Command::new("ssh")
        .args(&args)
        .kill_on_drop(true)
        .spawn()
        .context("starting ssh")?;
    // ssh gets Ctrl-C from the terminal itself; this process only ignores it while ssh runs.
    let mut interrupt = Signals::listen()?;
    let status = loop {
        tokio::select! {
            status = ssh.wait() => break status.context("waiting for ssh")?,
            r = proxy.serve() => {
                r?;
            }
            _ = interrupt.recv() => {}
        }
    };
    proxy.close().await;
    Ok(bin_support::exit::child_status(status))
}
