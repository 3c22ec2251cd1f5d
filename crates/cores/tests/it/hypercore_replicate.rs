//! Hypercore replication Rust <-> Rust over in-memory protomux transports: full and sparse download, live
//! appends, many cores on one connection, and hostile peers (tampered block, wrong proof, bad signature,
//! wrong capability): each rejected with nothing stored and the peer dropped.

use std::path::PathBuf;
use std::time::Duration;

use holepunch_cores::hypercore::caps;
use holepunch_cores::hypercore::messages::{Handshake, Range, Request, Sync};
use holepunch_cores::hypercore::replicator::{kind, replicate, Event, Replicator, PROTOCOL};
use holepunch_cores::hypercore::{Durability, Hypercore};
use holepunch_streams::protomux::{memory_pair, ChannelOptions, Mux};
use holepunch_wire::compact_encoding::{Decode, Encode};
use holepunch_wire::crypto::KeyPair;
use tokio::time::timeout;

const HH: [u8; 64] = [7; 64];
const T: Duration = Duration::from_secs(20);

fn tmp(name: &str) -> PathBuf {
    testkit::scratch_dir(&format!("hc-repl-{name}"))
}

fn block(i: u64) -> Vec<u8> {
    format!("block number {i} ")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

fn writer(name: &str, seed: u8, n: u64) -> Hypercore {
    let core = Hypercore::create(tmp(name), KeyPair::from_seed(&[seed; 32])).expect("create");
    core.set_durability(Durability::Process);
    let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
    for chunk in blocks.chunks(100) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        core.append(&refs).expect("append");
    }
    core
}

fn reader(name: &str, key: [u8; 32]) -> Hypercore {
    let core = Hypercore::create_reader(tmp(name), key, None).expect("reader");
    core.set_durability(Durability::Process);
    core
}

/// Connects two sets of replicators over an in-memory pair.
fn connect(a: &[Replicator], b: &[Replicator]) -> (Mux, Mux) {
    let (ta, tb) = memory_pair();
    (replicate(ta, true, &HH, a), replicate(tb, false, &HH, b))
}

#[tokio::test]
async fn full_download_byte_exact() {
    let w = writer("full-w", 1, 1000);
    let r = reader("full-r", w.key());
    let (rw, rr) = (Replicator::new(w.clone()), Replicator::new(r.clone()));
    let _m = connect(std::slice::from_ref(&rw), std::slice::from_ref(&rr));
    let len = timeout(T, rr.update()).await.expect("update");
    assert_eq!(len, 1000);
    timeout(T, rr.download(0, len)).await.expect("download");
    for i in 0..len {
        assert_eq!(r.get(i).expect("get"), Some(block(i)), "block {i}");
    }
    assert_eq!(r.tree_hash(), w.tree_hash());
    assert_eq!(rr.stats().blocks_downloaded, 1000);
    assert_eq!(rw.stats().blocks_uploaded, 1000);
}

#[tokio::test]
async fn sparse_get_fetches_only_that_block() {
    let w = writer("sparse-w", 2, 5000);
    let r = reader("sparse-r", w.key());
    let rr = Replicator::new(r.clone());
    let _m = connect(&[Replicator::new(w)], std::slice::from_ref(&rr));
    assert_eq!(timeout(T, rr.update()).await.expect("update"), 5000);
    for i in [4321, 7, 4999] {
        assert_eq!(
            timeout(T, rr.get(i)).await.expect("get").expect("ok"),
            block(i)
        );
    }
    assert_eq!(r.stored_blocks(), 3);
    assert_eq!(rr.stats().blocks_downloaded, 3);
}

#[tokio::test]
async fn live_append_is_seen_and_served() {
    let w = writer("live-w", 3, 10);
    let r = reader("live-r", w.key());
    let rr = Replicator::new(r.clone());
    let _m = connect(&[Replicator::new(w.clone())], std::slice::from_ref(&rr));
    let _all = rr.download_all();
    assert_eq!(timeout(T, rr.update()).await.expect("update"), 10);
    let mut rx = r.subscribe();
    w.append(&[b"eleven", b"twelve"]).expect("append");
    timeout(T, async {
        while !(r.length() == 12 && r.has(11)) {
            rx.changed().await.expect("changed");
        }
    })
    .await
    .expect("live append reached the reader");
    assert_eq!(r.get(10).expect("get"), Some(b"eleven".to_vec()));
    assert_eq!(r.get(11).expect("get"), Some(b"twelve".to_vec()));
}

#[tokio::test]
async fn many_cores_one_connection() {
    let ws: Vec<Hypercore> = (0..5)
        .map(|i| writer(&format!("many-w{i}"), 10 + i, 50 + u64::from(i)))
        .collect();
    let rs: Vec<Hypercore> = ws
        .iter()
        .enumerate()
        .map(|(i, w)| reader(&format!("many-r{i}"), w.key()))
        .collect();
    let wrep: Vec<Replicator> = ws.iter().cloned().map(Replicator::new).collect();
    let rrep: Vec<Replicator> = rs.iter().cloned().map(Replicator::new).collect();
    let _m = connect(&wrep, &rrep);
    for (i, rr) in rrep.iter().enumerate() {
        let len = timeout(T, rr.update()).await.expect("update");
        assert_eq!(len, 50 + i as u64);
        timeout(T, rr.download(0, len)).await.expect("download");
        assert_eq!(rs[i].tree_hash(), ws[i].tree_hash());
    }
}

#[tokio::test]
async fn reader_to_reader_relay() {
    // A full replica serves a third peer.
    let w = writer("relay-w", 4, 300);
    let mid = reader("relay-m", w.key());
    let last = reader("relay-l", w.key());
    let rm = Replicator::new(mid.clone());
    let _m1 = connect(&[Replicator::new(w.clone())], std::slice::from_ref(&rm));
    let len = timeout(T, rm.update()).await.expect("update");
    timeout(T, rm.download(0, len)).await.expect("download");
    let rl = Replicator::new(last.clone());
    let _m2 = connect(std::slice::from_ref(&rm), std::slice::from_ref(&rl));
    assert_eq!(timeout(T, rl.update()).await.expect("update"), 300);
    timeout(T, rl.download(0, 300)).await.expect("download");
    assert_eq!(last.tree_hash(), w.tree_hash());
}

/// How a hostile server spoils its answers.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    BlockByte,
    ProofNode,
    Signature,
    Capability,
}

/// A server that speaks the protocol by hand and tampers with what it sends.
async fn hostile_server(mux: Mux, core: Hypercore, tamper: Tamper) {
    let ch = mux
        .create_channel(ChannelOptions::new(PROTOCOL).id(core.discovery_key().to_vec()))
        .expect("channel");
    let mut cap = caps::replicate(false, &core.key(), &HH).expect("cap");
    if matches!(tamper, Tamper::Capability) {
        cap[0] ^= 1;
    }
    ch.open(
        &Handshake {
            seeks: false,
            capability: cap,
        }
        .to_bytes(),
    )
    .expect("open");
    let Ok(_) = ch.opened().await else { return };
    let sync = Sync {
        fork: 0,
        length: core.length(),
        remote_length: 0,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        ..Sync::default()
    };
    let _ = ch.send(kind::SYNC, &sync.to_bytes()).await;
    let range = Range {
        drop: false,
        start: 0,
        length: core.length(),
    };
    let _ = ch.send(kind::RANGE, &range.to_bytes()).await;
    while let Some((k, payload)) = ch.recv().await {
        if k != kind::REQUEST {
            continue;
        }
        let req = Request::from_bytes(&payload).expect("request");
        let mut data = core.proof(&req).expect("proof");
        match tamper {
            Tamper::BlockByte => {
                if let Some(b) = data.block.as_mut() {
                    b.value[0] ^= 1;
                }
            }
            Tamper::ProofNode => {
                if let Some(n) = data.block.as_mut().and_then(|b| b.nodes.first_mut()) {
                    n.hash[3] ^= 1;
                }
            }
            Tamper::Signature => {
                if let Some(s) = data.upgrade.as_mut().and_then(|u| u.signature.as_mut()) {
                    s[10] ^= 1;
                }
            }
            Tamper::Capability => {}
        }
        let _ = ch.send(kind::DATA, &data.to_bytes()).await;
    }
}

async fn hostile(tamper: Tamper) {
    let w = writer(&format!("hostile-w-{tamper:?}"), 5, 64);
    let r = reader(&format!("hostile-r-{tamper:?}"), w.key());
    let rr = Replicator::new(r.clone());
    let (ta, tb) = memory_pair();
    let _client = replicate(ta, true, &HH, std::slice::from_ref(&rr));
    let server_mux = Mux::new(tb);
    let server = tokio::spawn(hostile_server(server_mux, w.clone(), tamper));
    match tamper {
        Tamper::Signature | Tamper::Capability => {
            // The upgrade (signed head) is refused: length stays 0.
            let mut rx = rr.watch();
            timeout(T, async {
                while rr.stats().peers_dropped == 0 {
                    rx.changed().await.expect("replicator alive");
                }
            })
            .await
            .expect("peer dropped");
            assert_eq!(r.length(), 0);
        }
        Tamper::BlockByte | Tamper::ProofNode => {
            // A correct upgrade first, then a tampered block.
            let got = timeout(Duration::from_secs(2), rr.get(5)).await;
            assert!(got.is_err(), "tampered block must not be returned");
            assert_eq!(r.length(), 64, "the honest upgrade was taken");
            assert_eq!(rr.stats().peers_dropped, 1);
        }
    }
    assert_eq!(r.stored_blocks(), 0, "nothing stored");
    assert_eq!(rr.peers(), 0, "peer dropped");
    timeout(T, server)
        .await
        .expect("server ends")
        .expect("server task");
}

#[tokio::test]
async fn hostile_tampered_block() {
    hostile(Tamper::BlockByte).await;
}

#[tokio::test]
async fn hostile_wrong_proof() {
    hostile(Tamper::ProofNode).await;
}

#[tokio::test]
async fn hostile_bad_signature() {
    hostile(Tamper::Signature).await;
}

#[tokio::test]
async fn hostile_bad_capability() {
    hostile(Tamper::Capability).await;
}

#[tokio::test]
async fn core_attached_later_pairs_with_the_remote() {
    // A has the core from the start; B attaches it to the running mux later. A's first open is rejected
    // (B had nothing paired); B's open then reaches A's pairing and replication starts.
    let w = writer("late-w", 6, 40);
    let r = reader("late-r", w.key());
    let rw = Replicator::new(w.clone());
    let rr = Replicator::new(r.clone());
    let (ta, tb) = memory_pair();
    let _a = replicate(ta, true, &HH, std::slice::from_ref(&rw));
    let mut rx = rw.watch();
    let b = replicate(tb, false, &HH, &[]);
    // Wait until A's open was rejected (its peer removed) before B attaches.
    timeout(T, async {
        while !rw
            .events()
            .iter()
            .any(|e| matches!(e, Event::PeerRemoved { .. }))
        {
            rx.changed().await.expect("replicator alive");
        }
    })
    .await
    .expect("A's open rejected");
    rr.attach(&b, false, &HH);
    assert_eq!(timeout(T, rr.update()).await.expect("update"), 40);
    timeout(T, rr.download(0, 40)).await.expect("download");
    assert_eq!(r.tree_hash(), w.tree_hash());
}

#[tokio::test]
async fn reader_follows_a_truncation_to_the_new_fork() {
    let w = writer("fork-w", 7, 100);
    let r = reader("fork-r", w.key());
    let rr = Replicator::new(r.clone());
    let _m = connect(&[Replicator::new(w.clone())], std::slice::from_ref(&rr));
    let _all = rr.download_all();
    assert_eq!(timeout(T, rr.update()).await.expect("update"), 100);
    timeout(T, rr.download(0, 100)).await.expect("download");
    let mut rx = r.subscribe();
    w.truncate(60).expect("truncate");
    w.append(&[b"new 60", b"new 61"]).expect("append");
    timeout(T, async {
        while !(r.fork() == 1 && r.length() == 62 && r.has(61)) {
            rx.changed().await.expect("changed");
        }
    })
    .await
    .expect("reader moved to the new fork");
    assert_eq!(r.tree_hash(), w.tree_hash());
    assert_eq!(r.get(59).expect("get"), Some(block(59)));
    assert_eq!(r.get(60).expect("get"), Some(b"new 60".to_vec()));
    assert_eq!(r.get(61).expect("get"), Some(b"new 61".to_vec()));
    assert_eq!(r.get(62).expect("get"), None);
}

/// Two big cores crossing on one TCP connection (each side writes one and reads the other): both
/// directions are backed up at once, which must not deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_at_once_over_tcp() {
    use holepunch_cores::hypercore::replicator::replicate_stream;
    use holepunch_streams::noise::Keypair;
    use holepunch_streams::secret_stream::SecretStream;

    fn big(name: &str, seed: u8) -> Hypercore {
        let core = Hypercore::create(tmp(name), KeyPair::from_seed(&[seed; 32])).expect("create");
        core.set_durability(Durability::Process);
        let b = vec![seed; 64 * 1024];
        for _ in 0..6 {
            core.append(&[&b[..]; 64]).expect("append"); // 24 MiB per core
        }
        core
    }
    let (xw, yw) = (big("bidi-x", 21), big("bidi-y", 22));
    let (xr, yr) = (reader("bidi-xr", xw.key()), reader("bidi-yr", yw.key()));
    let a = [Replicator::new(xw.clone()), Replicator::new(yr.clone())];
    let b = [Replicator::new(yw.clone()), Replicator::new(xr.clone())];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, server) = tokio::join!(
        async {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            SecretStream::connect(tcp, &Keypair::generate())
                .await
                .expect("connect")
        },
        async {
            let (tcp, _) = listener.accept().await.expect("accept");
            SecretStream::accept(tcp, &Keypair::generate())
                .await
                .expect("accept")
        }
    );
    let _ma = replicate_stream(client, &a);
    let _mb = replicate_stream(server, &b);
    let (ra, rb) = (&a[1], &b[1]);
    timeout(Duration::from_secs(120), async {
        let (la, lb) = tokio::join!(ra.update(), rb.update());
        tokio::join!(ra.download(0, la), rb.download(0, lb));
    })
    .await
    .expect("both downloads finish");
    assert_eq!(xr.tree_hash(), xw.tree_hash());
    assert_eq!(yr.tree_hash(), yw.tree_hash());
    assert_eq!((xr.stored_blocks(), yr.stored_blocks()), (384, 384));
}

/// A core with unsigned writes (autobase's system and views) takes no peer's signed head while upgrades are
/// off, even for a proof asked for before they were turned off: nothing is stored and the error says why (a
/// race once let a view core take a head of length 2 without its blocks, and the next migration failed on
/// the missing block 0). With upgrades allowed, the same proof is stored.
#[test]
fn unsigned_writes_core_refuses_a_signed_head_unless_allowed() {
    let w = writer("unsigned-w", 11, 3);
    let r = reader("unsigned-r", w.key());
    let req = Request {
        id: 1,
        block: Some(holepunch_cores::hypercore::messages::RequestBlock { index: 0, nodes: 0 }),
        upgrade: Some(holepunch_cores::hypercore::messages::RequestUpgrade {
            start: 0,
            length: 3,
        }),
        manifest: true,
        ..Request::default()
    };
    let data = w.proof(&req).expect("proof");
    r.set_unsigned_writes(true);
    assert!(!r.takes_upgrades());
    let err = r.apply_proof(&data).expect_err("refused");
    assert!(
        matches!(
            err,
            holepunch_cores::hypercore::HypercoreError::UpgradeRefused
        ),
        "{err}"
    );
    assert_eq!((r.length(), r.stored_blocks()), (0, 0), "nothing stored");
    r.set_upgrades_allowed(true);
    r.apply_proof(&data).expect("stored once allowed");
    assert_eq!((r.length(), r.stored_blocks()), (3, 1));
    assert_eq!(r.get(0).expect("get").as_deref(), Some(&block(0)[..]));
}
