//! The hyperdht message codecs and signables against real JS hyperdht nodes: a Rust dht-rpc node joins
//! a JS hyperdht testnet (`tests/interop/js/testnet.js --hyperdht`), reads what JS stored (immutable,
//! mutable, announce records), and stores its own (with commits carrying the nodes' tokens and
//! Ed25519 signatures) for JS to read back. Loopback only; every step bounded in time.

use std::net::SocketAddrV4;
use std::time::Duration;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use ed25519_dalek::SigningKey;
use holepunch::compact_encoding::{Decode, Encode};
use holepunch::dht_rpc::driver::DhtHandle;
use holepunch::dht_rpc::messages::Id;
use holepunch::dht_rpc::node::{Config, QueryOpts, QuerySpec, Reply, RequestSpec};
use holepunch::hyperdht::constants::{ns, Command};
use holepunch::hyperdht::messages::{
    announce_signable, mutable_signable, sign, verify, Announce, LookupReply, MutableGetResponse,
    MutablePutRequest, Peer,
};
use interop::{json_field as json_scalar, json_strings};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(60);

fn blake2b(data: &[u8]) -> Id {
    Blake2b::<U32>::digest(data).into()
}

/// The testnet script's command loop: one command a line, one JSON line back, never an `"error"`.
async fn ask(js: &mut interop::tokio::JsProcess, cmd: &str) -> String {
    let line = js.ask(cmd, STEP).await;
    assert!(!line.contains("\"error\""), "{cmd}: {line}");
    line
}

/// A Rust bootstrapper plus `more` persistent nodes on 127.0.0.1, all serving the hyperdht commands; returns the
/// bootstrapper's address and the handles (the nodes run while they are held).
async fn rust_hyperdht_network(more: usize) -> (SocketAddrV4, Vec<DhtHandle>) {
    use holepunch::hyperdht::{CacheOpts, ServeHyperdht};
    let server = tokio::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let client = tokio::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let std::net::SocketAddr::V4(public) = server.local_addr().expect("addr") else {
        panic!("v4")
    };
    let boot = DhtHandle::spawn(Config::bootstrapper(public), server, client).expect("spawn");
    boot.serve_hyperdht(CacheOpts::default())
        .await
        .expect("serve");
    timeout(STEP, boot.bootstrapped())
        .await
        .expect("in time")
        .expect("running");
    let mut nodes = vec![boot];
    for _ in 0..more {
        let config = Config {
            bootstrap: vec![public],
            ephemeral: Some(false),
            firewalled: false,
            ..Config::default()
        };
        let n = DhtHandle::bind(std::net::Ipv4Addr::LOCALHOST, 0, config)
            .await
            .expect("bind");
        n.serve_hyperdht(CacheOpts::default()).await.expect("serve");
        timeout(STEP, n.bootstrapped())
            .await
            .expect("in time")
            .expect("running");
        nodes.push(n);
    }
    (public, nodes)
}

async fn query(
    node: &DhtHandle,
    target: Id,
    command: Command,
    value: Option<Vec<u8>>,
) -> Vec<Reply> {
    let out = timeout(
        STEP,
        node.query(
            QuerySpec {
                target,
                command: command.into(),
                value,
            },
            QueryOpts::default(),
        ),
    )
    .await
    .expect("query in time")
    .expect("node running");
    assert_eq!(out.result, Ok(()));
    out.replies
}

async fn commit(
    node: &DhtHandle,
    target: Id,
    command: Command,
    value: Option<Vec<u8>>,
    f: impl Fn(&Reply) -> Option<RequestSpec> + Send + 'static,
) {
    let spec = QuerySpec {
        target,
        command: command.into(),
        value,
    };
    let out = timeout(STEP, node.query_with_commit(spec, QueryOpts::default(), f))
        .await
        .expect("query in time")
        .expect("node running");
    assert_eq!(out.result, Ok(()), "commit reached at least one node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_reads_and_writes_hyperdht_records() {
    let mut js = interop::tokio::node("testnet.js", &["--hyperdht", "8"]);
    let ready = js.line(STEP).await;
    let bootstrap: SocketAddrV4 = json_scalar(&ready, "bootstrap").parse().expect("addr");
    let config = Config {
        bootstrap: vec![bootstrap],
        ephemeral: Some(false),
        firewalled: false,
        ..Config::default()
    };
    let node = DhtHandle::bind(std::net::Ipv4Addr::LOCALHOST, 0, config)
        .await
        .expect("bind");
    timeout(STEP, node.bootstrapped())
        .await
        .expect("in time")
        .expect("running");

    // --- JS writes, Rust reads.
    let put = ask(&mut js, "put").await;
    let hash: Id = hex::decode(json_scalar(&put, "hash"))
        .expect("hex")
        .try_into()
        .expect("32");
    let mutable_pk: Id = hex::decode(json_scalar(&put, "mutablePk"))
        .expect("hex")
        .try_into()
        .expect("32");
    let announce_pk: Id = hex::decode(json_scalar(&put, "announcePk"))
        .expect("hex")
        .try_into()
        .expect("32");

    let replies = query(&node, hash, Command::IMMUTABLE_GET, None).await;
    let found = replies
        .iter()
        .filter_map(|r| r.value.as_deref())
        .find(|v| blake2b(v) == hash);
    assert_eq!(found, Some(&b"hello from js"[..]));

    let replies = query(
        &node,
        blake2b(&mutable_pk),
        Command::MUTABLE_GET,
        Some(vec![0]),
    )
    .await;
    let got: Vec<MutableGetResponse> = replies
        .iter()
        .filter_map(|r| r.value.as_deref())
        .filter_map(|v| MutableGetResponse::from_bytes(v).ok())
        .collect();
    assert!(!got.is_empty(), "some node returned the mutable value");
    for m in &got {
        assert_eq!((m.seq, &m.value[..]), (3, &b"mutable from js"[..]));
        assert!(
            verify(
                &m.signature,
                &mutable_signable(m.seq, &m.value),
                &mutable_pk
            ),
            "JS signature verifies"
        );
    }

    let topic = [0x0a; 32];
    let replies = query(&node, topic, Command::LOOKUP, None).await;
    let peers: Vec<Peer> = replies
        .iter()
        .filter_map(|r| r.value.as_deref())
        .filter_map(|v| LookupReply::from_bytes(v).ok())
        .flat_map(|l| l.peers)
        .collect();
    assert!(
        peers.iter().any(|p| p.public_key == announce_pk),
        "{peers:?}"
    );

    // --- Rust writes, JS reads.
    let value = b"hello from rust".to_vec();
    let target = blake2b(&value);
    let v = value.clone();
    commit(&node, target, Command::IMMUTABLE_GET, None, move |r| {
        Some(RequestSpec {
            token: r.token,
            command: Command::IMMUTABLE_PUT.into(),
            target: Some(target),
            value: Some(v.clone()),
        })
    })
    .await;
    let got = ask(&mut js, &format!("immget {}", hex::encode(target))).await;
    assert_eq!(json_scalar(&got, "value"), "hello from rust");

    let key = SigningKey::from_bytes(&[3; 32]);
    let pk = key.verifying_key().to_bytes();
    let value = b"mutable from rust".to_vec();
    let signature = sign(&mutable_signable(7, &value), &key);
    let put = MutablePutRequest {
        public_key: pk,
        seq: 7,
        value,
        signature,
    }
    .to_bytes();
    let target = blake2b(&pk);
    commit(
        &node,
        target,
        Command::MUTABLE_GET,
        Some(vec![0]),
        move |r| {
            Some(RequestSpec {
                token: r.token,
                command: Command::MUTABLE_PUT.into(),
                target: Some(target),
                value: Some(put.clone()),
            })
        },
    )
    .await;
    let got = ask(&mut js, &format!("mutget {}", hex::encode(pk))).await;
    assert_eq!(json_scalar(&got, "value"), "mutable from rust");
    assert_eq!(json_scalar(&got, "seq"), "7");

    // An announce signed for each node (its id and token are part of the signable).
    let key = SigningKey::from_bytes(&[4; 32]);
    let pk = key.verifying_key().to_bytes();
    let topic = [0x0b; 32];
    commit(&node, topic, Command::LOOKUP, None, move |r| {
        let (id, token) = (r.from_id?, r.token?);
        let peer = Peer {
            public_key: pk,
            relay_addresses: vec![],
        };
        let signable = announce_signable(&topic, &token, &id, &peer, None, &ns::announce());
        let ann = Announce {
            peer: Some(peer),
            refresh: None,
            signature: Some(sign(&signable, &key)),
            bump: 0,
        };
        Some(RequestSpec {
            token: Some(token),
            command: Command::ANNOUNCE.into(),
            target: Some(topic),
            value: Some(ann.to_bytes()),
        })
    })
    .await;
    let got = ask(&mut js, &format!("lookup {}", hex::encode(topic))).await;
    assert!(
        json_strings(&got, "keys").contains(&hex::encode(pk)),
        "{got}"
    );

    let _ = js.finish(STEP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_hyperdht_client_uses_rust_storage_nodes() {
    let (public, _nodes) = rust_hyperdht_network(7).await;

    let mut child = interop::tokio::node("hyperdht_client.js", &[&public.to_string()]);
    let out = child.line(STEP).await;

    assert_eq!(json_scalar(&out, "imm"), "imm from js", "{out}");
    assert!(
        json_scalar(&out, "immPutNodes")
            .parse::<usize>()
            .expect("n")
            >= 1
    );
    assert_eq!(json_scalar(&out, "mut"), "mut v5", "{out}");
    assert_eq!(json_scalar(&out, "mutSeq"), "5", "{out}");
    let announce_pk = json_scalar(&out, "announcePk");
    assert_eq!(
        json_strings(&out, "lookup"),
        vec![format!("{announce_pk}@1.2.3.4:5")],
        "{out}"
    );
    assert_eq!(
        json_scalar(&out, "findPeer"),
        json_scalar(&out, "selfPk"),
        "{out}"
    );
    assert_eq!(json_scalar(&out, "afterUnannounce"), "0", "{out}");
    let _ = child.finish(STEP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_peers_connect_through_rust_dht_nodes() {
    let (public, _nodes) = rust_hyperdht_network(5).await;

    let mut child = interop::tokio::node("hyperdht_connect.js", &[&public.to_string()]);
    let out = child.line(STEP).await;
    assert_eq!(json_scalar(&out, "echo"), "echo:hi", "{out}");
    assert_eq!(
        json_scalar(&out, "remotePublicKey"),
        json_scalar(&out, "serverPublicKey")
    );
    let _ = child.finish(STEP).await;
}
