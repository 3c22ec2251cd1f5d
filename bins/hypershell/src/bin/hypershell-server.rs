//! `hypershell-server`: serves shells and file transfers to the peers on its allow list. See
//! `hypershell-server --help`.
//!
//! Exit codes: 0 after Ctrl-C/SIGTERM, 1 on an error (one line on stderr), 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bin_support::bootstrap::BootstrapNode;
use bin_support::runtime::{Flavor, Shutdown};
use bin_support::{Report, Signals};
use clap::{CommandFactory, Parser};
use holepunch::hyperdht::{Connection, HyperDht, RelayThrough};
use holepunch::hypershell::{
    format_key, PROTOCOL_DOWNLOAD, PROTOCOL_SHELL, PROTOCOL_TUNNEL_LOCAL, PROTOCOL_UPLOAD,
};
use holepunch::protomux::{Mux, Pairing};
use hypershell_cli::cli::ServerCli;
use hypershell_cli::tunnel::{self, TunnelPolicy};
use hypershell_cli::{keys, shell, transfer, CLOSE_TIMEOUT, KEEP_ALIVE};

/// Runtime errors: `hypershell-server: <message>`.
const REPORT: Report = Report::new("hypershell-server: ");

fn main() -> ExitCode {
    let cli = ServerCli::parse();
    bin_support::logging::init();
    let nodes = match cli.dht.bootstrap_nodes(ServerCli::command()) {
        Ok(n) => n,
        Err(e) => e.exit(),
    };
    let relay = match cli.dht.relay(ServerCli::command()) {
        Ok(r) => r,
        Err(e) => e.exit(),
    };
    REPORT.exit(bin_support::runtime::run(
        Flavor::MultiThread(2),
        Shutdown::Background,
        run(cli, nodes, relay),
    ))
}

async fn run(
    cli: ServerCli,
    nodes: Vec<BootstrapNode>,
    relay: Option<[u8; 32]>,
) -> anyhow::Result<()> {
    let keyfile = cli.keyfile.clone().unwrap_or_else(keys::default_keyfile);
    let key_pair = keys::load_or_generate(&keyfile)?;
    let firewall_file: Option<PathBuf> = (!cli.disable_firewall).then(|| {
        cli.firewall
            .clone()
            .unwrap_or_else(|| keys::shell_dir().join("authorized_peers"))
    });
    if let Some(f) = &firewall_file {
        // Fail early on a bad file (and create the default one).
        keys::read_authorized_peers(f)?;
    }
    let dht = hypershell_cli::open_dht(&nodes, cli.dht.net.lan()).await?;
    // Know whether we are reachable before announcing, so clients get the right path at once.
    dht.fully_bootstrapped()
        .await
        .context("bootstrapping the DHT node")?;
    let firewall = firewall_file.clone();
    let mut server = dht.create_server(move |remote, _| {
        let key = format_key(remote);
        // The allow list is read again for every peer, so edits apply at once.
        let allowed = match &firewall {
            None => true,
            Some(f) => match keys::read_authorized_peers(f) {
                Ok(list) => list.contains(remote),
                Err(e) => {
                    eprintln!("{e:#}");
                    false
                }
            },
        };
        if allowed {
            println!("Firewall allowed: {key}");
        } else {
            println!("Firewall denied: {key}");
        }
        !allowed
    });
    server.set_relay_through(relay.map(RelayThrough::Key));
    server
        .listen(key_pair.clone())
        .await
        .context("announcing the server")?;
    if cli.protocol.is_none() {
        println!("To connect to this shell, on another computer run:");
        println!("hypershell {}", format_key(&key_pair.public));
    } else {
        println!("Running server with restricted protocols");
        println!("Server key: {}", format_key(&key_pair.public));
    }
    println!();
    let policy = Arc::new(TunnelPolicy {
        hosts: cli.tunnel_host.clone(),
        ports: cli.tunnel_port.clone(),
    });
    let cli = Arc::new(cli);
    // Ctrl-C or SIGTERM: stop serving, exit 0.
    let mut stop = Signals::listen()?;
    loop {
        tokio::select! {
            conn = server.accept() => match conn {
                Some(conn) => { tokio::spawn(serve_connection(conn, cli.clone(), dht.clone(), policy.clone())); }
                None => break,
            },
            _ = stop.recv() => break,
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, server.close()).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, dht.destroy()).await;
    Ok(())
}

async fn serve_connection(
    mut conn: Connection,
    cli: Arc<ServerCli>,
    dht: HyperDht,
    policy: Arc<TunnelPolicy>,
) {
    conn.set_keep_alive(Some(KEEP_ALIVE));
    let beside = conn.get_ref().control();
    let remote = format_key(conn.remote_public_key());
    let (mux, pairings) = Mux::new_with(conn, |mux| {
        let mut p: Vec<(&'static str, Pairing)> = Vec::new();
        for (name, protocol) in [
            ("shell", PROTOCOL_SHELL),
            ("upload", PROTOCOL_UPLOAD),
            ("download", PROTOCOL_DOWNLOAD),
            ("tunnel", PROTOCOL_TUNNEL_LOCAL),
        ] {
            if cli.serves(name) {
                p.push((protocol, mux.pair(protocol, None)));
            }
        }
        p
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (protocol, mut pairing) in pairings {
        let (dht, beside, policy) = (dht.clone(), beside.clone(), policy.clone());
        tasks.spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            while let Some(incoming) = pairing.next().await {
                let Some(channel) = incoming.accept_default() else {
                    continue;
                };
                let (dht, beside, policy) = (dht.clone(), beside.clone(), policy.clone());
                sessions.spawn(async move {
                    let r = match protocol {
                        PROTOCOL_SHELL => shell::serve(channel).await,
                        PROTOCOL_UPLOAD => transfer::serve_upload(channel).await,
                        PROTOCOL_TUNNEL_LOCAL => tunnel::serve(channel, dht, beside, policy).await,
                        _ => transfer::serve_download(channel).await,
                    };
                    if let Err(e) = r {
                        eprintln!("{protocol}: {e:#}");
                    }
                });
            }
            while sessions.join_next().await.is_some() {}
        });
    }
    let _ = mux.closed().await;
    drop(mux);
    while tasks.join_next().await.is_some() {}
    println!("Connection closed {remote}");
}
