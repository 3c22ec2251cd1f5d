//! `autobase-kv`: a multi-writer key-value store on one autobase view. See `autobase-kv --help`.
//!
//! Exit codes: 0 on success, 1 on an error (one line on stderr, `autobase-kv: ...`) and when `get` finds no
//! such key, 2 on bad usage.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use autobase_kv_cli::cli::{Cli, Command};
use bin_support::bootstrap::{self, BootstrapNode};
use bin_support::runtime::{Flavor, Shutdown};
use bin_support::{Report, Signals};
use clap::{CommandFactory, Parser};
use holepunch::autobase::base::{Autobase, AutobaseOptions};
use holepunch::autobase::kv::{Kv, KvOp};
use holepunch::autobase::replicate::{
    fast_forward, sync_base, BaseReplicator, FAST_FORWARD_TIMEOUT,
};
use holepunch::corestore::Corestore;
use holepunch::hyperbee::RangeOptions;
use holepunch::hyperdht::{HyperDht, HyperDhtOpts};
use holepunch::hyperswarm::{Hyperswarm, JoinOpts, SwarmOpts};
use holepunch::lan_discovery::LanOpts;
use holepunch::protomux::Mux;

/// Runtime errors: `autobase-kv: <message>`, as the JS twin.
const REPORT: Report = Report::new("autobase-kv: ");

type Base = Autobase<Kv>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    bin_support::logging::init();
    let ok = |r: anyhow::Result<()>| r.map(|()| 0u8);
    let result = match cli.command {
        Command::Create {
            dir,
            encryption_key,
        } => ok(create(&dir, encryption_key)),
        Command::Join {
            key,
            dir,
            encryption_key,
        } => ok(join(key, &dir, encryption_key)),
        Command::AddWriter { dir, key, indexer } => {
            ok(append(&dir, &KvOp::AddWriter { key, indexer }))
        }
        Command::RemoveWriter { dir, key } => ok(append(&dir, &KvOp::RemoveWriter { key })),
        Command::Put {
            dir,
            key,
            value,
            optimistic: false,
        } => ok(append(&dir, &KvOp::Put { key, value })),
        Command::Put {
            dir,
            key,
            value,
            optimistic: true,
        } => ok(append_optimistic(&dir, &KvOp::Put { key, value })),
        Command::Del { dir, key } => ok(append(&dir, &KvOp::Del { key })),
        Command::Get { dir, key } => get(&dir, &key),
        Command::List { dir } => ok(list(&dir)),
        Command::Info { dir } => ok(info(&dir)),
        Command::Sync { dir, seconds, net } => {
            let nodes = match net.nodes_or_usage(Cli::command()) {
                Ok(n) => n,
                Err(e) => e.exit(),
            };
            ok(bin_support::runtime::run(
                Flavor::MultiThread(2),
                Shutdown::Background,
                sync(&dir, seconds, nodes, net.lan()),
            ))
        }
    };
    REPORT.exit(result)
}

/// The base `dir` holds (the one its local writer was created for, JS's `referrer`), or a new one
/// (`bootstrap`: joining that base). Only `create` and `join` make a store where there is none.
fn open(dir: &str, bootstrap: Option<[u8; 32]>, create: bool) -> anyhow::Result<Base> {
    open_with(dir, bootstrap, create, None)
}

/// [`open`], with the base's encryption key (`create`/`join`; later opens find it kept in the store).
fn open_with(
    dir: &str,
    bootstrap: Option<[u8; 32]>,
    create: bool,
    encryption_key: Option<[u8; 32]>,
) -> anyhow::Result<Base> {
    let path = Path::new(dir);
    if !create && !path.exists() {
        bail!("no base in {dir}: run `autobase-kv create {dir}` or `autobase-kv join BASE_KEY {dir}` first");
    }
    let store = Corestore::open(path).with_context(|| format!("opening the store in {dir}"))?;
    let stored = store
        .get("local")?
        .get_user_data("referrer")
        .and_then(|r| <[u8; 32]>::try_from(r.as_slice()).ok());
    if let (Some(s), Some(b)) = (stored, bootstrap) {
        if s != b {
            bail!(
                "{dir} already holds a writer of the base {}",
                hex::encode(s)
            );
        }
    }
    Ok(Autobase::open(
        store,
        Kv,
        AutobaseOptions {
            bootstrap: bootstrap.or(stored),
            encryption_key,
        },
    )?)
}

fn create(dir: &str, encryption_key: Option<[u8; 32]>) -> anyhow::Result<()> {
    let base = open_with(dir, None, true, encryption_key)?;
    println!("{}", hex::encode(base.key()));
    println!("{}", hex::encode(base.local_key()));
    Ok(())
}

fn join(key: [u8; 32], dir: &str, encryption_key: Option<[u8; 32]>) -> anyhow::Result<()> {
    let base = open_with(dir, Some(key), true, encryption_key)?;
    println!("{}", hex::encode(base.local_key()));
    Ok(())
}

fn append(dir: &str, op: &KvOp) -> anyhow::Result<()> {
    let mut base = open(dir, None, false)?;
    base.update()?;
    if !base.writable()? {
        bail!("this store is not a writer of its base (yet): add its key first");
    }
    base.append(Some(&op.to_json()))?;
    base.update()?;
    base.flush()?;
    Ok(())
}

/// An optimistic append: written whether or not the store is a writer of its base.
fn append_optimistic(dir: &str, op: &KvOp) -> anyhow::Result<()> {
    let mut base = open(dir, None, false)?;
    base.update()?;
    base.append_optimistic(&op.to_json())?;
    base.update()?;
    base.flush()?;
    Ok(())
}

fn get(dir: &str, key: &str) -> anyhow::Result<u8> {
    let mut base = open(dir, None, false)?;
    base.update()?;
    match base.view().get(key.as_bytes())? {
        Some(entry) => {
            println!(
                "{}",
                String::from_utf8_lossy(&entry.value.unwrap_or_default())
            );
            Ok(0)
        }
        None => Ok(1),
    }
}

fn list(dir: &str) -> anyhow::Result<()> {
    let mut base = open(dir, None, false)?;
    base.update()?;
    let mut out = String::new();
    for e in base.view().range_vec(&RangeOptions::default())? {
        out.push_str(&String::from_utf8_lossy(&e.key));
        out.push('\t');
        out.push_str(&String::from_utf8_lossy(&e.value.unwrap_or_default()));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// The JS twin's `info` line; the signed lengths are those the indexers' checkpoints, assembled into
/// multi-signatures, commit.
fn info(dir: &str) -> anyhow::Result<()> {
    let mut base = open(dir, None, false)?;
    base.update()?;
    let sys = base.system();
    let members: Vec<_> = sys
        .list()?
        .into_iter()
        .map(|(k, m)| {
            serde_json::json!({
                "key": hex::encode(k),
                "isIndexer": m.is_indexer,
                "isRemoved": m.is_removed,
                "length": m.length,
            })
        })
        .collect();
    // what the store holds of each member's core: a peer that fast-forwarded holds only the tail
    let mut writers = Vec::new();
    for (k, _) in sys.list()? {
        if let Some(core) = base.writer_core(&k)? {
            let i = core.info();
            writers.push(serde_json::json!({
                "key": hex::encode(k),
                "length": i.length,
                "contiguousLength": i.contiguous_length,
                "storedBlocks": i.stored_blocks,
            }));
        }
    }
    let checkouts = |c: &[holepunch::autobase::messages::Checkout]| -> Vec<serde_json::Value> {
        c.iter()
            .map(|c| serde_json::json!({ "key": hex::encode(c.key), "length": c.length }))
            .collect()
    };
    let line = serde_json::json!({
        "key": hex::encode(base.key()),
        "localKey": hex::encode(base.local_key()),
        "writable": base.writable()?,
        "isIndexer": base.is_indexer(),
        "viewLength": base.view().core().length(),
        "viewSignedLength": base.view().core().signed_length(),
        "systemLength": sys.core_length(),
        "systemSignedLength": sys.db().core().signed_length(),
        "indexedLength": base.state().indexed_length(),
        "indexers": checkouts(&sys.indexers),
        "heads": checkouts(&sys.heads),
        "members": members,
        "writers": writers,
    });
    println!("{line}");
    Ok(())
}

/// One round: what arrived is applied, new writers are replicated, and an indexer acks when one is due
/// (JS's ack timer).
fn round(base: &mut Base, repl: &BaseReplicator) -> anyhow::Result<()> {
    sync_base(base, repl)?;
    if base.is_indexer() && base.ack()? {
        sync_base(base, repl)?;
    }
    Ok(())
}

async fn sync(
    dir: &str,
    seconds: f64,
    nodes: Vec<BootstrapNode>,
    lan: Option<LanOpts>,
) -> anyhow::Result<()> {
    let mut signals = Signals::listen()?;
    let mut base = open(dir, None, false)?;
    let repl = BaseReplicator::new(base.store().clone(), base.key());
    round(&mut base, &repl)?;
    let addrs = bootstrap::resolve(&nodes).await?;
    let dht = HyperDht::bind(HyperDhtOpts {
        host: bootstrap::bind_host(&addrs),
        bootstrap: addrs,
        lan,
        ..HyperDhtOpts::default()
    })
    .await?;
    let swarm = Hyperswarm::new(dht, SwarmOpts::default());
    let discovery = swarm.join(
        repl.discovery_key(),
        JoinOpts {
            server: true,
            client: true,
        },
    )?;
    let (s, r) = (swarm.clone(), repl.clone());
    let accept = tokio::spawn(async move {
        while let Some((conn, _)) = s.next_connection().await {
            let remote = conn.remote_public_key();
            let (stream, guard) = conn.into_parts();
            let is_initiator = stream.is_initiator();
            let hh = *stream.handshake_hash();
            let (mux, ()) = Mux::new_with(stream, |m| r.attach(m, is_initiator, &hh, Some(remote)));
            tokio::spawn(async move {
                mux.closed().await;
                drop(guard);
            });
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let mut changed = repl.changed();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = signals.recv() => break,
            r = changed.changed() => if r.is_err() { break },
        }
        round(&mut base, &repl)?;
        // a peer's system core signed far ahead: take it and its views instead of every writer block
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let from = base.state().indexed_length();
        if fast_forward(&mut base, &repl, FAST_FORWARD_TIMEOUT.min(left)).await? {
            let to = base.state().indexed_length();
            println!(
                "{}",
                serde_json::json!({ "fastForward": { "to": to, "from": from } })
            );
            round(&mut base, &repl)?;
        }
    }
    round(&mut base, &repl)?;
    accept.abort();
    drop(discovery);
    swarm.destroy().await;
    base.flush()?;
    Ok(())
}
