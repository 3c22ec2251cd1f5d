//! `hypershell`: connects to a P2P shell. See `hypershell --help`.
//!
//! Exit codes: the remote command's; 1 on an error (one line on stderr); 2 on bad usage.

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use holepunch::protomux::Mux;
use hypershell_cli::cli::ClientCli;
use hypershell_cli::{keys, shell, CLOSE_TIMEOUT};

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
    if !cli.local.is_empty() {
        eprintln!(
            "hypershell: -L (local port forwarding) is not supported by this implementation yet"
        );
        return ExitCode::FAILURE;
    }
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
