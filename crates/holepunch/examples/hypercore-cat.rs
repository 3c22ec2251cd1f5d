//! `hypercore-cat`: share stdin as a hypercore over HyperDHT, or download one to stdout.
//!
//! ```text
//! hypercore-cat seed DIR [--bootstrap LIST]      # stdin -> a new core in DIR (blocks of <= 64 KiB); prints the
//!                                                # key in hex as the first stdout line; seeds until killed
//! hypercore-cat get KEY DIR [--bootstrap LIST]   # downloads every block of core KEY into DIR, writes them to
//!                                                # stdout (in order, as they arrive), exits 0
//! ```
//!
//! Peers find each other with hyperswarm ([`holepunch::hyperswarm`], JS hyperswarm 4 compatible): the seeder
//! joins the core's discovery key as a server (announces and listens), a getter joins it as a client (looks
//! it up and connects). Both sides then run hypercore replication on each connection, so JS hyperswarm +
//! hypercore peers interoperate.
//! The bootstrap list comes from `--bootstrap`, else `HYPERDHT_BOOTSTRAP`, else the public nodes.
//!
//! Exit codes: 0 done, 1 error (one line on stderr), 2 bad usage. `HYPERCORE_CAT_TRACE=1` prints the phases'
//! times on stderr; `RUST_LOG` (e.g. `holepunch=debug`) turns on the library's tracing.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use holepunch::crypto::KeyPair;
use holepunch::hypercore::replicator::{replicate_stream, Replicator};
use holepunch::hypercore::{Durability, Hypercore};
use holepunch::hyperdht::{bootstrap, HyperDht, HyperDhtOpts};
use holepunch::hyperswarm::{Hyperswarm, JoinOpts, SwarmOpts};
use holepunch::protomux::Mux;

/// Largest block appended from stdin.
const BLOCK: usize = 64 * 1024;
/// Blocks per append (one signature each).
const APPEND_BATCH: usize = 64;
/// How long `get` looks for peers before giving up.
const FIND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(
    name = "hypercore-cat",
    about = "Share stdin as a hypercore, or download one to stdout"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Bootstrap nodes, HOST:PORT[,HOST:PORT...] (a bare PORT means 127.0.0.1:PORT); default
    /// HYPERDHT_BOOTSTRAP, else the public nodes.
    #[arg(long, global = true, value_name = "LIST")]
    bootstrap: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Append stdin to a new core in DIR, print its key, seed it until killed.
    Seed {
        /// Directory of the new core.
        dir: PathBuf,
    },
    /// Download every block of core KEY (hex) into DIR and write them to stdout.
    Get {
        /// The core key in hex.
        key: String,
        /// Directory of the local replica.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        // Diagnostics on stderr (e.g. RUST_LOG=holepunch=debug), with the time since start.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    let result = runtime.block_on(run(cli));
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("hypercore-cat: {e:#}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    trace("start");
    let nodes = match (&cli.bootstrap, std::env::var(bootstrap::ENV)) {
        (Some(list), _) => bootstrap::parse_list(list)?,
        (None, Ok(list)) if !list.trim().is_empty() => bootstrap::parse_list(&list)?,
        _ => bootstrap::default_nodes(),
    };
    let addrs = bootstrap::resolve(&nodes).await?;
    // A loopback network (tests) keeps to loopback.
    let host = if !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()) {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap: addrs,
        host,
        ephemeral: Some(true),
        ..HyperDhtOpts::default()
    })
    .await?;
    dht.ready().await?;
    trace("dht ready");
    match cli.command {
        Command::Seed { dir } => seed(&dht, dir).await,
        Command::Get { key, dir } => get(&dht, &key, dir).await,
    }
}

/// With `HYPERCORE_CAT_TRACE` set, prints the time since start and `what` on stderr.
fn trace(what: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    if std::env::var_os("HYPERCORE_CAT_TRACE").is_some() {
        eprintln!("[{:>8.3}s] {what}", start.elapsed().as_secs_f64());
    }
}

/// Fills `buf` from `r` until it is full or the input ends; returns how much was read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

async fn seed(dht: &HyperDht, dir: PathBuf) -> anyhow::Result<()> {
    let core = Hypercore::create(&dir, KeyPair::generate())
        .with_context(|| format!("creating a core in {}", dir.display()))?;
    core.set_durability(Durability::Process);
    let c = core.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut stdin = std::io::stdin().lock();
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(APPEND_BATCH);
        loop {
            let mut buf = vec![0u8; BLOCK];
            let n = fill(&mut stdin, &mut buf).context("reading stdin")?;
            buf.truncate(n);
            if n > 0 {
                batch.push(buf);
            }
            if batch.len() == APPEND_BATCH || (n < BLOCK && !batch.is_empty()) {
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                c.append(&refs)?;
                batch.clear();
            }
            if n < BLOCK {
                return Ok(());
            }
        }
    })
    .await??;
    let rep = Replicator::new(core.clone());
    let _swarm = swarm(dht, core.discovery_key(), true, rep.clone()).await?;
    println!("{}", hex::encode(core.key()));
    std::io::stdout().flush()?;
    // Seeds until killed (the swarm keeps accepting and replicating).
    std::future::pending::<anyhow::Result<()>>().await
}

async fn get(dht: &HyperDht, key: &str, dir: PathBuf) -> anyhow::Result<()> {
    let key: [u8; 32] = hex::decode(key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .context("KEY must be 64 hex digits")?;
    let core = if dir.join("meta").exists() {
        Hypercore::open(&dir)?
    } else {
        Hypercore::create_reader(&dir, key, None)?
    };
    if core.key() != key {
        bail!("{} holds another core", dir.display());
    }
    core.set_durability(Durability::Process);
    let rep = Replicator::new(core.clone());
    let swarm = swarm(dht, core.discovery_key(), false, rep.clone()).await?;
    tokio::time::timeout(FIND_TIMEOUT, rep.wait_for_peers(1))
        .await
        .context("no peer found for this key")?;
    trace("connected");
    let length = rep.update().await;
    trace("updated");
    // The download runs while a writer thread sends the blocks to stdout in order as they arrive.
    let download = {
        let rep = rep.clone();
        tokio::spawn(async move {
            rep.download(0, length).await;
            trace("downloaded");
        })
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        while let Some(block) = rx.blocking_recv() {
            out.write_all(&block)?;
        }
        out.flush()
    });
    for i in 0..length {
        let block = match core.get(i)? {
            Some(b) => b,
            None => rep.get(i).await?,
        };
        if tx.send(block).await.is_err() {
            break; // the writer failed: its error is reported below
        }
    }
    drop(tx);
    match writer.join() {
        Ok(r) => r.context("writing stdout")?,
        Err(_) => bail!("the stdout writer panicked"),
    }
    download.await?;
    swarm.destroy().await;
    Ok(())
}

/// Joins `topic` on a hyperswarm over `dht` (as a server: announced and accepting, returning once the
/// announcement is flushed; else as a client) and replicates `rep` on every connection it makes.
async fn swarm(
    dht: &HyperDht,
    topic: [u8; 32],
    server: bool,
    rep: Replicator,
) -> anyhow::Result<Hyperswarm> {
    let swarm = Hyperswarm::new(dht.clone(), SwarmOpts::default());
    let discovery = swarm.join(
        topic,
        JoinOpts {
            server,
            client: !server,
        },
    )?;
    if server {
        discovery.flushed().await;
    }
    let s = swarm.clone();
    tokio::spawn(async move {
        let _discovery = discovery;
        while let Some((conn, _info)) = s.next_connection().await {
            let (stream, guard) = conn.into_parts();
            let mux: Mux = replicate_stream(stream, std::slice::from_ref(&rep));
            // The swarm counts the connection until it ends.
            tokio::spawn(async move {
                mux.closed().await;
                drop(guard);
            });
        }
    });
    Ok(swarm)
}
