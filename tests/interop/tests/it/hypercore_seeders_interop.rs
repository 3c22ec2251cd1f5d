//! A JS peer and a Rust peer both seeding one core serve a third peer (hyperswarm 4.17.2 + hypercore 11.37.1
//! on a local JS HyperDHT testnet, loopback only, every wait bounded).
//!
//! Both directions of who wrote the core: a JS writer with a Rust mirror (a Rust peer that downloaded the core
//! from the writer and goes on seeding it), and a Rust writer with a JS mirror. In each, a Rust reader and
//! then a JS reader join the core's discovery key as clients, wait until both seeders are connected, download
//! every block and check them byte-exact; each reader's per-peer counters (Rust: [`Replicator::peer_stats`]
//! keyed by the remote's stream public key; JS: the `download` event's `peer.remotePublicKey`) must show
//! blocks from *both* seeders, each identified by its swarm public key.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use holepunch::crypto::{hash, KeyPair};
use holepunch::hypercore::replicator::{replicate_stream, Replicator};
use holepunch::hypercore::{Durability, Hypercore};
use holepunch::hyperdht::HyperDhtOpts;
use holepunch::hyperswarm::{Discovery, Hyperswarm, JoinOpts, SwarmOpts};
use interop::tokio::{node, JsProcess};
use serde_json::Value;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(90);
/// Blocks in the core: enough that a reader's requests spread over both seeders.
const BLOCKS: u64 = 2000;

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hc-seeders-{name}"))
}

/// Block `i` as `js/hypercore_swarm.js` writes it.
fn block(i: u64) -> Vec<u8> {
    format!("block number {i} ")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

fn expected_bytes() -> Vec<u8> {
    (0..BLOCKS).flat_map(block).collect()
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
}

fn v4(a: &SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => *a,
        SocketAddr::V6(_) => panic!("testnet on IPv6"),
    }
}

fn testnet() -> interop::JsTestnet {
    interop::require_js();
    tokio::task::block_in_place(|| interop::JsTestnet::start(5))
}

async fn rust_swarm(net: &interop::JsTestnet) -> Hyperswarm {
    let swarm = Hyperswarm::bind(
        HyperDhtOpts {
            bootstrap: net.bootstrap.iter().map(v4).collect(),
            host: Ipv4Addr::LOCALHOST,
            ..HyperDhtOpts::default()
        },
        SwarmOpts::default(),
    )
    .await
    .expect("bind swarm");
    timeout(STEP, swarm.dht().fully_bootstrapped())
        .await
        .expect("bootstrap in time")
        .expect("bootstrap");
    swarm
}

/// Joins the core's discovery key and replicates `rep` on every connection the swarm makes.
fn replicate_on(swarm: &Hyperswarm, rep: &Replicator, opts: JoinOpts) -> Discovery {
    let discovery = swarm.join(rep.core().discovery_key(), opts).expect("join");
    let (swarm, rep) = (swarm.clone(), rep.clone());
    tokio::spawn(async move {
        while let Some((conn, _info)) = swarm.next_connection().await {
            let (stream, guard) = conn.into_parts();
            let mux = replicate_stream(stream, std::slice::from_ref(&rep));
            tokio::spawn(async move {
                mux.closed().await;
                drop(guard);
            });
        }
    });
    discovery
}

/// A seeding Rust peer: its swarm (kept alive), the discovery and the replicator.
struct RustPeer {
    swarm: Hyperswarm,
    _discovery: Discovery,
    rep: Replicator,
}

impl RustPeer {
    fn public_key(&self) -> String {
        hex::encode(self.swarm.key_pair().public)
    }
}

/// A Rust writer of [`BLOCKS`] blocks, announced as a server.
async fn rust_writer(net: &interop::JsTestnet) -> RustPeer {
    let core = Hypercore::create(tmp("rust-writer"), KeyPair::generate()).expect("create");
    core.set_durability(Durability::Process);
    let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(block).collect();
    for chunk in blocks.chunks(500) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        core.append(&refs).expect("append");
    }
    let swarm = rust_swarm(net).await;
    let rep = Replicator::new(core);
    let discovery = replicate_on(
        &swarm,
        &rep,
        JoinOpts {
            server: true,
            client: false,
        },
    );
    timeout(STEP, discovery.flushed())
        .await
        .expect("announced in time");
    RustPeer {
        swarm,
        _discovery: discovery,
        rep,
    }
}

/// A Rust mirror: joins as client and server, downloads every block of `key` from whoever has it, and seeds
/// on (announced) afterwards.
async fn rust_mirror(net: &interop::JsTestnet, key: [u8; 32]) -> RustPeer {
    let core = Hypercore::create_reader(tmp("rust-mirror"), key, None).expect("reader");
    core.set_durability(Durability::Process);
    let swarm = rust_swarm(net).await;
    let rep = Replicator::new(core);
    let discovery = replicate_on(
        &swarm,
        &rep,
        JoinOpts {
            server: true,
            client: true,
        },
    );
    let length = timeout(STEP, async {
        rep.wait_for_peers(1).await;
        rep.update().await
    })
    .await
    .expect("mirror found the writer");
    assert_eq!(length, BLOCKS);
    timeout(STEP, rep.download(0, length))
        .await
        .expect("mirror downloaded in time");
    timeout(STEP, discovery.flushed())
        .await
        .expect("mirror announced in time");
    RustPeer {
        swarm,
        _discovery: discovery,
        rep,
    }
}

/// A third Rust peer: downloads the whole core once both seeders are connected; checks the bytes and that
/// each of `seeders` (swarm public keys, hex) served some blocks.
async fn rust_reader(net: &interop::JsTestnet, key: [u8; 32], seeders: [&str; 2]) {
    let core = Hypercore::create_reader(tmp("rust-reader"), key, None).expect("reader");
    core.set_durability(Durability::Process);
    let swarm = rust_swarm(net).await;
    let rep = Replicator::new(core.clone());
    let _discovery = replicate_on(
        &swarm,
        &rep,
        JoinOpts {
            server: false,
            client: true,
        },
    );
    timeout(STEP, rep.wait_for_peers(2))
        .await
        .expect("the reader connected to both seeders");
    let length = timeout(STEP, rep.update()).await.expect("update in time");
    assert_eq!(length, BLOCKS);
    timeout(STEP, rep.download(0, length))
        .await
        .expect("reader downloaded in time");
    let got: Vec<u8> = (0..length)
        .flat_map(|i| core.get(i).expect("get").expect("block stored"))
        .collect();
    assert!(got == expected_bytes(), "the third peer's bytes differ");
    let from: HashMap<String, u64> = rep
        .peer_stats()
        .into_iter()
        .filter_map(|p| Some((hex::encode(p.remote_public_key?), p.blocks_downloaded)))
        .collect();
    let total: u64 = from.values().sum();
    assert_eq!(total, BLOCKS, "every block downloaded once: {from:?}");
    for s in seeders {
        assert!(
            from.get(s).is_some_and(|&n| n > 0),
            "no blocks from seeder {s}: {from:?}"
        );
    }
    eprintln!("rust reader: blocks per seeder {from:?}");
    swarm.destroy().await;
}

/// A third JS peer (`js/hypercore_swarm.js get KEY DIR 2`): the same checks on its output.
async fn js_reader(net: &interop::JsTestnet, key: &str, seeders: [&str; 2]) {
    let dir = tmp("js-reader");
    let mut js = node(
        "hypercore_swarm.js",
        &[
            &net.bootstrap_arg(),
            "get",
            key,
            dir.to_str().expect("utf8"),
            "2",
        ],
    );
    let v = json(&js.line(STEP).await);
    assert_eq!(v["length"], BLOCKS);
    assert_eq!(
        v["hash"].as_str(),
        Some(hex::encode(hash(&[&expected_bytes()])).as_str()),
        "the JS reader's bytes differ"
    );
    let from = v["from"].as_object().expect("from");
    for s in seeders {
        assert!(
            from.get(s).and_then(Value::as_u64).is_some_and(|n| n > 0),
            "no blocks from seeder {s}: {from:?}"
        );
    }
    eprintln!("js reader: blocks per seeder {from:?}");
    let _ = js.finish(Duration::from_secs(10)).await;
}

async fn js_peer(args: &[&str]) -> (JsProcess, Value) {
    let mut js = node("hypercore_swarm.js", args);
    let v = json(&js.line(STEP).await);
    (js, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_writer_and_rust_mirror_serve_a_third_peer() {
    let net = testnet();
    let dir = tmp("js-writer");
    let (mut writer, v) = js_peer(&[
        &net.bootstrap_arg(),
        "seed",
        dir.to_str().expect("utf8"),
        &BLOCKS.to_string(),
    ])
    .await;
    let key_hex = v["key"].as_str().expect("key").to_string();
    let writer_pk = v["publicKey"].as_str().expect("publicKey").to_string();
    let key: [u8; 32] = hex::decode(&key_hex).expect("hex").try_into().expect("32");
    let mirror = rust_mirror(&net, key).await;
    let mirror_pk = mirror.public_key();
    rust_reader(&net, key, [&writer_pk, &mirror_pk]).await;
    js_reader(&net, &key_hex, [&writer_pk, &mirror_pk]).await;
    // The mirror served both readers.
    assert!(mirror.rep.stats().blocks_uploaded > 0);
    let _ = writer.finish(Duration::from_secs(10)).await;
    mirror.swarm.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_writer_and_js_mirror_serve_a_third_peer() {
    let net = testnet();
    let writer = rust_writer(&net).await;
    let key = writer.rep.core().key();
    let key_hex = hex::encode(key);
    let writer_pk = writer.public_key();
    let dir = tmp("js-mirror");
    let (mut mirror, v) = js_peer(&[
        &net.bootstrap_arg(),
        "mirror",
        &key_hex,
        dir.to_str().expect("utf8"),
    ])
    .await;
    assert_eq!(v["length"], BLOCKS);
    let mirror_pk = v["publicKey"].as_str().expect("publicKey").to_string();
    rust_reader(&net, key, [&writer_pk, &mirror_pk]).await;
    js_reader(&net, &key_hex, [&writer_pk, &mirror_pk]).await;
    let _ = mirror.finish(Duration::from_secs(10)).await;
    writer.swarm.destroy().await;
}
