//! `hyperdht`: run HyperDHT nodes, a bootstrap node, a local testnet or a blind relay. See `hyperdht --help`.
//!
//! Exit codes: 0 after Ctrl-C/SIGTERM, 1 on a runtime error (one line on stderr), 2 on bad flags.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bin_support::bootstrap::{self, BootstrapNode};
use bin_support::runtime::{Flavor, Shutdown};
use bin_support::{Report, Signals};
use clap::Parser;
use holepunch::dht_rpc::driver::DhtHandle;
use holepunch::dht_rpc::node::Config;
use holepunch::hyperdht::{CacheOpts, ServeHyperdht};
use hyperdht_cli::cli::{Cli, Mode};

mod doctor;

/// Runtime errors: `hyperdht: <message>`.
const REPORT: Report = Report::new("hyperdht: ");

fn main() -> ExitCode {
    let cli = Cli::parse();
    bin_support::logging::init();
    let mode = match cli.mode(bootstrap::env()) {
        Ok(mode) => mode,
        Err(e) => e.exit(),
    };
    REPORT.exit(bin_support::runtime::run(
        Flavor::CurrentThread,
        Shutdown::Wait,
        async {
            // SIGINT (Ctrl-C) and SIGTERM, listened to from the start so that none is missed between two
            // waits; either ends the run cleanly (exit 0, as the JS bin).
            let mut stop = Signals::listen()?;
            match mode {
                Mode::Bootstrap { host, port } => run_bootstrap(host, port, stop).await,
                Mode::Nodes {
                    count,
                    host,
                    port,
                    bootstrap,
                } => run_nodes(count, host, port, &bootstrap, stop).await,
                Mode::Testnet { size, port } => run_testnet(size, port, stop).await,
                Mode::Relay {
                    seed,
                    host,
                    port,
                    bootstrap,
                } => run_relay(seed, host, port, &bootstrap, stop).await,
                Mode::Doctor {
                    bootstrap,
                    relay,
                    timeout,
                } => {
                    let healthy = tokio::select! {
                        r = doctor::run(&bootstrap, relay, timeout) => r?,
                        _ = stop.recv() => return Ok(()),
                    };
                    if !healthy {
                        anyhow::bail!("connectivity check failed (see above)");
                    }
                    Ok(())
                }
            }
        },
    ))
}

/// An address as the JS bin prints `node.address()` (Node's `console.log` of `{ host, family, port }`).
fn js_address(a: SocketAddrV4) -> String {
    format!("{{ host: '{}', family: 4, port: {} }}", a.ip(), a.port())
}

async fn run_bootstrap(host: Ipv4Addr, port: u16, mut stop: Signals) -> anyhow::Result<()> {
    println!("Starting DHT bootstrap node...");
    let public = SocketAddrV4::new(host, port);
    // The JS binds 0.0.0.0 and only announces `host`; binding `host` itself keeps a node meant for one
    // interface (e.g. loopback) on it, and 0.0.0.0 is the fallback when `host` is not a local address
    // (a public address behind a 1:1 NAT).
    let node = match DhtHandle::bind(host, port, Config::bootstrapper(public)).await {
        Ok(node) => node,
        Err(holepunch::dht_rpc::driver::DriverError::Io(e))
            if e.kind() == std::io::ErrorKind::AddrNotAvailable =>
        {
            DhtHandle::bind(Ipv4Addr::UNSPECIFIED, port, Config::bootstrapper(public))
                .await
                .with_context(|| format!("binding port {port}"))?
        }
        Err(e) => return Err(e).with_context(|| format!("binding {public}")),
    };
    node.serve_hyperdht(CacheOpts::default()).await?;
    node.bootstrapped().await?;
    println!("Bootstrap node bound to {}", js_address(node.server_addr()));
    println!("Fully started Hyperswarm DHT bootstrap node");
    stop.recv().await;
    drop(node);
    println!("Bootstrap node closed");
    Ok(())
}

async fn run_nodes(
    count: usize,
    host: Ipv4Addr,
    port: u16,
    bootstrap: &[BootstrapNode],
    mut stop: Signals,
) -> anyhow::Result<()> {
    println!("Booting DHT nodes...");
    let bootstrap = bootstrap::resolve(bootstrap).await?;
    let mut nodes = Vec::with_capacity(count);
    let mut ephemeral = Vec::with_capacity(count);
    let boot = async {
        for id in 0..count {
            let config = Config {
                bootstrap: bootstrap.clone(),
                ..Config::default()
            };
            let node = DhtHandle::bind(host, port, config)
                .await
                .with_context(|| format!("binding {}", SocketAddrV4::new(host, port)))?;
            node.serve_hyperdht(CacheOpts::default()).await?;
            node.bootstrapped().await?;
            println!("Node #{id} bound to {}", js_address(node.server_addr()));
            ephemeral.push(node.state().await?.ephemeral);
            nodes.push(node);
        }
        println!(
            "Fully started {count} Hyperswarm DHT node{}",
            if count == 1 { "" } else { "s" }
        );
        anyhow::Ok(())
    };
    // Ctrl-C while booting also ends cleanly.
    tokio::select! {
        r = boot => r?,
        _ = stop.recv() => return Ok(()),
    }

    // The driver reports no events, so the nodes' state is polled for the JS bin's
    // "is ephemeral" / "is persistent" lines.
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = poll.tick() => {
                for (id, node) in nodes.iter().enumerate() {
                    let now = node.state().await?.ephemeral;
                    let Some(was) = ephemeral.get_mut(id) else { continue };
                    if now != *was {
                        *was = now;
                        let addr = js_address(node.server_addr());
                        if now {
                            println!("Node #{id} is ephemeral {addr}");
                        } else {
                            println!("Node #{id} is persistent, joining remote routing tables {addr}");
                        }
                    }
                }
            }
        }
    }
    println!("Shutting down nodes...");
    let count = nodes.len();
    drop(nodes);
    for id in 0..count {
        println!("Node #{id} closed");
    }
    Ok(())
}

async fn run_testnet(size: usize, port: u16, mut stop: Signals) -> anyhow::Result<()> {
    let host = Ipv4Addr::LOCALHOST;
    let first = SocketAddrV4::new(host, port);
    let server = tokio::net::UdpSocket::bind(first)
        .await
        .with_context(|| format!("binding {first}"))?;
    let client = tokio::net::UdpSocket::bind((host, 0))
        .await
        .with_context(|| format!("binding {host}:0"))?;
    let public = match server.local_addr()? {
        std::net::SocketAddr::V4(a) => a,
        std::net::SocketAddr::V6(a) => anyhow::bail!("bound an IPv6 address {a}"),
    };
    let mut nodes = Vec::with_capacity(size);
    let boot = async {
        let bootstrapper = DhtHandle::spawn(Config::bootstrapper(public), server, client)?;
        bootstrapper.serve_hyperdht(CacheOpts::default()).await?;
        bootstrapper.bootstrapped().await?;
        nodes.push(bootstrapper);
        while nodes.len() < size {
            // As hyperdht/testnet.js: persistent, unfirewalled nodes bootstrapping through the first.
            let config = Config {
                bootstrap: vec![public],
                ephemeral: Some(false),
                firewalled: false,
                ..Config::default()
            };
            let node = DhtHandle::bind(host, 0, config).await?;
            node.serve_hyperdht(CacheOpts::default()).await?;
            node.bootstrapped().await?;
            nodes.push(node);
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = boot => r?,
        _ = stop.recv() => return Ok(()),
    }
    let addrs: Vec<SocketAddrV4> = nodes.iter().map(DhtHandle::server_addr).collect();
    println!("{}", bootstrap::format_list(&addrs));
    eprintln!("hyperdht: testnet of {size} nodes on {host} running; Ctrl-C to stop");
    stop.recv().await;
    drop(nodes);
    Ok(())
}

/// A blind relay: a HyperDHT server whose every connection gets a blind-relay session named by the peer's
/// public key (what hyperdht's `relayThrough` pairs with). Prints the public key, then `paired N` after
/// each completed pairing.
async fn run_relay(
    seed: Option<[u8; 32]>,
    host: Ipv4Addr,
    port: u16,
    bootstrap: &[BootstrapNode],
    mut stop: Signals,
) -> anyhow::Result<()> {
    use holepunch::blind_relay::BlindRelayServer;
    use holepunch::crypto::KeyPair;
    use holepunch::hyperdht::{HyperDht, HyperDhtOpts};

    let bootstrap = bootstrap::resolve(bootstrap).await?;
    let key_pair = seed.map_or_else(KeyPair::generate, |s| KeyPair::from_seed(&s));
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap,
        host,
        port,
        ..HyperDhtOpts::default()
    })
    .await
    .with_context(|| format!("binding {}", SocketAddrV4::new(host, port)))?;
    let streams = dht.clone();
    let relay = BlindRelayServer::new(move || {
        streams
            .create_raw_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    let mut server = dht.create_server(|_, _| false);
    tokio::select! {
        r = async {
            dht.fully_bootstrapped().await?;
            server.listen(key_pair.clone()).await
        } => r.context("announcing the relay")?,
        _ = stop.recv() => return Ok(()),
    }
    println!("{}", hex::encode(key_pair.public));
    eprintln!("hyperdht: blind relay listening; Ctrl-C to stop");
    let mut paired = 0;
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            conn = server.accept() => {
                let Some(conn) = conn else { break };
                let id = *conn.remote_public_key();
                match relay.accept(conn, Some(&id)) {
                    // The session lives as long as the peer's connection.
                    Ok(session) => { tokio::spawn(async move { session.closed().await }); }
                    Err(e) => eprintln!("hyperdht: relay session refused: {e}"),
                }
            }
            _ = poll.tick() => {
                let now = relay.stats().pairings_matched;
                while paired < now {
                    paired += 1;
                    println!("paired {paired}");
                }
            }
        }
    }
    // Unannounce, but do not hold up the exit for a slow network.
    let _ = tokio::time::timeout(Duration::from_millis(100), server.close()).await;
    dht.destroy().await;
    Ok(())
}
