//! swarm-chat: a line chat among every peer that joins a topic, over hyperswarm. Talks to JS peers running
//! `tests/interop/js/hyperswarm_peer.js` on the same topic (hex) as well.
//!
//! ```text
//! cargo run -p holepunch --example swarm-chat -- [--bootstrap HOST:PORT,...] NAME-OR-64-HEX
//! ```
//!
//! The topic is the 64-hex argument itself or the BLAKE2b-256 hash of the name. Each stdin line goes to every
//! connected peer as one message; messages received are printed as `<first 8 hex of the key>> text`.
//! Connections and disconnections are reported on stderr. Ends at the end of stdin (leaving the topic).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Parser;
use holepunch::crypto;
use holepunch::hyperdht::bootstrap;
use holepunch::hyperdht::HyperDhtOpts;
use holepunch::hyperswarm::{Hyperswarm, JoinOpts, SwarmOpts};
use holepunch::secret_stream::SecretStreamWriter;
use holepunch::udx::UdxStream;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Chat on a hyperswarm topic.
#[derive(Debug, Parser)]
#[command(name = "swarm-chat")]
struct Args {
    /// Bootstrap nodes (HOST:PORT,...); else $HYPERDHT_BOOTSTRAP, else the public network.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Topic: 64 hex characters, or any name (hashed).
    topic: String,
}

type Writers = Arc<Mutex<HashMap<[u8; 32], SecretStreamWriter<UdxStream>>>>;

fn short(key: &[u8; 32]) -> String {
    hex::encode(key).chars().take(8).collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let topic: [u8; 32] = match hex::decode(&args.topic) {
        Ok(b) if b.len() == 32 => b.try_into().map_err(|_| anyhow::anyhow!("topic"))?,
        _ => crypto::hash(&[args.topic.as_bytes()]),
    };
    let flag = args
        .bootstrap
        .as_deref()
        .map(bootstrap::parse_list)
        .transpose()?;
    let nodes = bootstrap::choose(flag, std::env::var_os(bootstrap::ENV))?;
    let swarm = Hyperswarm::bind(
        HyperDhtOpts {
            bootstrap: bootstrap::resolve(&nodes).await?,
            ..HyperDhtOpts::default()
        },
        SwarmOpts::default(),
    )
    .await
    .context("starting the swarm")?;
    eprintln!(
        "swarm-chat: {} on topic {}",
        hex::encode(swarm.key_pair().public),
        hex::encode(topic)
    );
    let discovery = swarm.join(topic, JoinOpts::default())?;

    let writers: Writers = Arc::default();
    let accept = {
        let swarm = swarm.clone();
        let writers = writers.clone();
        tokio::spawn(async move {
            while let Some((conn, info)) = swarm.next_connection().await {
                let key = info.public_key;
                eprintln!(
                    "swarm-chat: connected to {} ({})",
                    short(&key),
                    if info.client {
                        "we dialled"
                    } else {
                        "they dialled"
                    }
                );
                let (stream, guard) = conn.into_parts();
                let (mut reader, writer) = stream.split();
                if let Ok(mut w) = writers.lock() {
                    w.insert(key, writer);
                }
                let writers = writers.clone();
                tokio::spawn(async move {
                    while let Ok(Some(m)) = reader.recv_message().await {
                        println!("{}> {}", short(&key), String::from_utf8_lossy(&m));
                    }
                    if let Ok(mut w) = writers.lock() {
                        w.remove(&key);
                    }
                    drop(guard);
                    eprintln!("swarm-chat: {} left", short(&key));
                });
            }
        })
    };

    if discovery.flushed().await {
        eprintln!("swarm-chat: announced and looked up");
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let targets: Vec<([u8; 32], SecretStreamWriter<UdxStream>)> = match writers.lock() {
            Ok(mut w) => w.drain().collect(),
            Err(_) => Vec::new(),
        };
        let mut alive = Vec::with_capacity(targets.len());
        for (key, mut w) in targets {
            match w.send_message(line.as_bytes()).await {
                Ok(()) => alive.push((key, w)),
                Err(e) => eprintln!("swarm-chat: sending to {}: {e}", short(&key)),
            }
        }
        if let Ok(mut w) = writers.lock() {
            w.extend(alive);
        }
    }
    swarm.destroy().await;
    accept.abort();
    Ok(())
}
