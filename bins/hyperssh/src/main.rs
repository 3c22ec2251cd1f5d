//! `hyperssh`: ssh to a `hypertele-server` over HyperDHT. See `hyperssh --help`.
//!
//! Exit codes: ssh's own; 1 on an error before ssh runs (one `Error: ...` line on stderr), 2 on bad usage.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use holepunch::hyperdht::bootstrap;
use hyperssh_cli::cli::{ssh_args, Cli};
use hyperssh_cli::{current_user, proxy_config};
use hypertele_tool::client::{ClientConfig, Proxy};
use hypertele_tool::config::ConfigError;

/// The port `--rdp` listens on (the default RDP port).
const RDP_PORT: u16 = 3389;

fn main() -> ExitCode {
    let cli = Cli::parse();
    hypertele_tool::init_logging();
    let nodes = match bootstrap::choose(
        cli.bootstrap.clone().map(|b| b.0),
        std::env::var_os(bootstrap::ENV),
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("Error: {}: {e}", bootstrap::ENV);
            return ExitCode::from(2);
        }
    };
    let cfg = match config(&cli) {
        Ok(cfg) => cfg,
        Err(e) => return fail(&e.into()),
    };
    let runtime = match hypertele_tool::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    let result = runtime.block_on(run(&cli, cfg, nodes));
    runtime.shutdown_timeout(hypertele_tool::CLOSE_TIMEOUT);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("Error: {e:#}");
    ExitCode::FAILURE
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
        let mut interrupt = hypertele_tool::Interrupt::listen()?;
        let result = tokio::select! {
            r = proxy.serve() => r,
            () = interrupt.wait() => Ok(()),
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
    let mut interrupt = hypertele_tool::Interrupt::listen()?;
    let status = loop {
        tokio::select! {
            status = ssh.wait() => break status.context("waiting for ssh")?,
            r = proxy.serve() => {
                r?;
            }
            () = interrupt.wait() => {}
        }
    };
    proxy.close().await;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + sig).unwrap_or(1);
        }
    }
    1
}
