//! `hypershell`: connects to a P2P shell. See `hypershell --help`.
//!
//! Exit codes: the remote command's; 1 on an error (one line on stderr); 2 on bad usage.

use std::process::ExitCode;

use anyhow::Context;
use bin_support::runtime::{Flavor, Shutdown};
use bin_support::{Report, Signal, Signals};
use clap::{CommandFactory, Parser};
use holepunch::protomux::Mux;
use hypershell_cli::cli::ClientCli;
use hypershell_cli::{keys, shell, tunnel, CLOSE_TIMEOUT};

/// Runtime errors: `hypershell: <message>`.
const REPORT: Report = Report::new("hypershell: ");

fn main() -> ExitCode {
    let cli = ClientCli::parse();
    bin_support::logging::init();
    let nodes = match cli.dht.bootstrap_nodes(ClientCli::command()) {
        Ok(n) => n,
        Err(e) => e.exit(),
    };
    let relay = match cli.dht.relay(ClientCli::command()) {
        Ok(r) => r,
        Err(e) => e.exit(),
    };
    // The stdin reader thread blocks in read(): do not wait for it.
    let result = bin_support::runtime::run(Flavor::CurrentThread, Shutdown::Background, async {
        let keyfile = cli.keyfile.clone().unwrap_or_else(keys::default_keyfile);
        let key_pair = keys::load_or_generate(&keyfile)?;
        let server = keys::resolve_server(&cli.server)?;
        let dht = hypershell_cli::open_dht(&nodes, cli.dht.net.lan()).await?;
        if !cli.local.is_empty() {
            // One connection per tunnel, as the JS; runs until one fails or Ctrl-C (exit 0; SIGTERM is
            // not handled and kills, as the JS).
            let mut interrupt = Signals::listen_to(&[Signal::Interrupt])?;
            let mut tunnels = tokio::task::JoinSet::new();
            for spec in cli.local.clone() {
                let (dht, kp) = (dht.clone(), key_pair.clone());
                tunnels.spawn(
                    async move { tunnel::run_client(&dht, &server, &kp, &spec, relay).await },
                );
            }
            let result = tokio::select! {
                r = tunnels.join_next() => match r {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => Err(e.into()),
                    None => Ok(()),
                },
                _ = interrupt.recv() => Ok(()),
            };
            tunnels.abort_all();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, dht.destroy()).await;
            return result.map(|()| 0);
        }
        let result = async {
            let conn = hypershell_cli::connect(&dht, &server, &key_pair, relay).await?;
            let mux = Mux::new(conn);
            let code = shell::run_client(&mux, &cli.command).await;
            mux.destroy();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, mux.closed()).await;
            code
        }
        .await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, dht.destroy()).await;
        result.context("shell")
    });
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => REPORT.fail(&e),
    }
}
