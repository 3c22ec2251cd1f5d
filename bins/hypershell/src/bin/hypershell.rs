//! `hypershell`: connects to a P2P shell. See `hypershell --help`.
//!
//! Exit codes: the remote command's; 1 on an error (one line on stderr); 2 on bad usage.

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use holepunch::protomux::Mux;
use hypershell_cli::cli::ClientCli;
use hypershell_cli::{keys, shell, tunnel, CLOSE_TIMEOUT};

fn main() -> ExitCode {
    let cli = ClientCli::parse();
    hypershell_cli::init_logging();
    let nodes = match cli.dht.bootstrap_nodes(
        ClientCli::command(),
        std::env::var_os(holepunch::hyperdht::bootstrap::ENV),
    ) {
        Ok(n) => n,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return hypershell_cli::fail("hypershell", &e.into()),
    };
    let result = runtime.block_on(async {
        let keyfile = cli.keyfile.clone().unwrap_or_else(keys::default_keyfile);
        let key_pair = keys::load_or_generate(&keyfile)?;
        let server = keys::resolve_server(&cli.server)?;
        let dht = hypershell_cli::open_dht(&nodes).await?;
        if !cli.local.is_empty() {
            // One connection per tunnel, as the JS; runs until one fails or Ctrl-C.
            let mut tunnels = tokio::task::JoinSet::new();
            for spec in cli.local.clone() {
                let (dht, kp) = (dht.clone(), key_pair.clone());
                tunnels.spawn(async move { tunnel::run_client(&dht, &server, &kp, &spec).await });
            }
            let result = tokio::select! {
                r = tunnels.join_next() => match r {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => Err(e.into()),
                    None => Ok(()),
                },
                _ = tokio::signal::ctrl_c() => Ok(()),
            };
            tunnels.abort_all();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, dht.destroy()).await;
            return result.map(|()| 0);
        }
        let result = async {
            let conn = hypershell_cli::connect(&dht, &server, &key_pair).await?;
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
    // The stdin reader thread blocks in read(): do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => hypershell_cli::fail("hypershell", &e),
    }
}
