//! Hypercore replication `want`/`unwant` and extensions, Rust <-> Rust over in-memory protomux pairs:
//! a reader finds a block a sparse seeder holds far past its contiguous prefix (one `want`, one block
//! request), a seeder announces a block it gets later to a peer that wants its segment (and not after an
//! `unwant`), and extension messages between replicators and from a hand-driven peer (name compression,
//! unknown names ignored).

use std::path::PathBuf;
use std::time::Duration;

use holepunch_cores::hypercore::caps;
use holepunch_cores::hypercore::messages::{
    BitfieldMessage, Data, Extension as ExtensionMessage, Handshake, Range, Request, RequestBlock,
    RequestUpgrade, Sync, Want,
};
use holepunch_cores::hypercore::replicator::{
    kind, replicate, ExtensionEncoding, Replicator, PROTOCOL, WANT_SEGMENT,
};
use holepunch_cores::hypercore::{Durability, Hypercore};
use holepunch_streams::protomux::{memory_pair, Channel, ChannelOptions, Mux};
use holepunch_wire::compact_encoding::{Decode, Encode};
use holepunch_wire::crypto::KeyPair;
use tokio::time::timeout;

const HH: [u8; 64] = [7; 64];
const T: Duration = Duration::from_secs(30);
/// Blocks of the writer's core.
const LEN: u64 = 60_000;
/// The block far past the sparse seeder's prefix.
const FAR: u64 = 50_000;

fn tmp(name: &str) -> PathBuf {
    testkit::scratch_dir(&format!("hc-want-{name}"))
}

fn block(i: u64) -> Vec<u8> {
    format!("block {i}").into_bytes()
}

fn writer(name: &str, n: u64) -> Hypercore {
    let core = Hypercore::create(tmp(name), KeyPair::from_seed(&[42; 32])).expect("create");
    core.set_durability(Durability::Process);
    let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
    for chunk in blocks.chunks(1000) {
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

/// A reader of `w` holding exactly `blocks` (and `w`'s signed head), stored from proofs `w` made.
fn sparse_copy(name: &str, w: &Hypercore, blocks: &[u64]) -> Hypercore {
    let s = reader(name, w.key());
    for &index in blocks {
        let req = Request {
            id: 1,
            fork: 0,
            block: Some(RequestBlock {
                index,
                nodes: s.missing_nodes(2 * index),
            }),
            upgrade: (s.length() == 0).then_some(RequestUpgrade {
                start: 0,
                length: w.length(),
            }),
            manifest: s.manifest().is_none(),
            ..Request::default()
        };
        let data = w.proof(&req).expect("proof");
        s.apply_proof(&data).expect("apply");
    }
    assert_eq!(s.length(), w.length());
    assert_eq!(s.stored_blocks(), blocks.len() as u64);
    s
}

fn connect(a: &[Replicator], b: &[Replicator]) -> (Mux, Mux) {
    let (ta, tb) = memory_pair();
    (replicate(ta, true, &HH, a), replicate(tb, false, &HH, b))
}

/// Waits until `f` holds for `rep`'s state.
async fn until(rep: &Replicator, f: impl Fn(&Replicator) -> bool) {
    let mut rx = rep.watch();
    timeout(T, async {
        while !f(rep) {
            rx.changed().await.expect("replicator alive");
        }
    })
    .await
    .expect("condition reached in time");
}

#[tokio::test]
async fn reader_finds_a_block_far_past_a_sparse_seeders_prefix() {
    let w = writer("far-w", LEN);
    let mut held: Vec<u64> = (0..10).collect();
    held.push(FAR);
    let s = sparse_copy("far-s", &w, &held);
    let r = reader("far-r", w.key());
    let (rs, rr) = (Replicator::new(s.clone()), Replicator::new(r.clone()));
    let _m = connect(std::slice::from_ref(&rs), std::slice::from_ref(&rr));
    assert_eq!(timeout(T, rr.update()).await.expect("update"), LEN);
    let got = timeout(T, rr.get(FAR)).await.expect("get in time");
    assert_eq!(got.expect("get"), block(FAR));
    assert_eq!(r.stored_blocks(), 1, "only the block read is stored");
    let st = rr.stats();
    assert_eq!(st.wants_sent, 1, "one want, for segment 0: {st:?}");
    assert_eq!(st.unwants_sent, 0);
    assert_eq!(st.requests_sent, 2, "the upgrade and the one block: {st:?}");
    assert_eq!(st.blocks_downloaded, 1);
    let ss = rs.stats();
    assert_eq!(ss.wants_received, 1);
    assert_eq!(ss.blocks_uploaded, 1);
    // Another block of the same segment costs no further want.
    assert_eq!(
        timeout(T, rr.get(3)).await.expect("get").expect("ok"),
        block(3)
    );
    assert_eq!(rr.stats().wants_sent, 1);
}

#[tokio::test]
async fn reader_downloading_a_range_discovers_sparse_blocks() {
    // A download range over a sparse seeder's holes ends with what it has past its prefix.
    let w = writer("range-w", LEN);
    let held = [0, 1, 2, 40_000, 40_001, FAR];
    let s = sparse_copy("range-s", &w, &held);
    let r = reader("range-r", w.key());
    let (rs, rr) = (Replicator::new(s.clone()), Replicator::new(r.clone()));
    let _m = connect(std::slice::from_ref(&rs), std::slice::from_ref(&rr));
    assert_eq!(timeout(T, rr.update()).await.expect("update"), LEN);
    let _all = rr.download_all();
    // (A block is stored before the replicator counts it: wait for both.)
    let n = held.len() as u64;
    until(&rr, |rr| {
        rr.core().stored_blocks() == n && rr.stats().blocks_downloaded == n
    })
    .await;
    for i in held {
        assert_eq!(r.get(i).expect("get"), Some(block(i)), "block {i}");
    }
    let st = rr.stats();
    assert_eq!(st.wants_sent, 1, "{st:?}");
    assert_eq!(st.blocks_downloaded, held.len() as u64);
    assert_eq!(
        st.no_data_received, 0,
        "nothing was asked that the seeder lacks"
    );
}

/// A peer driven by hand on `mux` for `core`'s channel (we are the responder side of [`HH`]).
async fn raw_peer(mux: &Mux, core: &Hypercore) -> Channel {
    let ch = mux
        .create_channel(ChannelOptions::new(PROTOCOL).id(core.discovery_key().to_vec()))
        .expect("channel");
    let cap = caps::replicate(false, &core.key(), &HH).expect("cap");
    ch.open(
        &Handshake {
            seeks: false,
            capability: cap,
        }
        .to_bytes(),
    )
    .expect("open");
    timeout(T, ch.opened())
        .await
        .expect("opened in time")
        .expect("opened");
    ch
}

/// Receives messages until one of type `k`; returns those before it and its payload.
async fn recv_until(ch: &Channel, k: u64) -> (Vec<(u64, Vec<u8>)>, Vec<u8>) {
    let mut before = Vec::new();
    loop {
        let (kk, payload) = timeout(T, ch.recv())
            .await
            .expect("message in time")
            .expect("channel open");
        if kk == k {
            return (before, payload);
        }
        before.push((kk, payload));
    }
}

/// Asks the seeder for block `index` and returns the messages it sent before the answer.
async fn request_block(ch: &Channel, id: u64, index: u64) -> Vec<(u64, Vec<u8>)> {
    let req = Request {
        id,
        fork: 0,
        block: Some(RequestBlock { index, nodes: 0 }),
        ..Request::default()
    };
    ch.send(kind::REQUEST, &req.to_bytes()).await.expect("send");
    let (before, data) = recv_until(ch, kind::DATA).await;
    let data = Data::from_bytes(&data).expect("data");
    assert_eq!(data.request, id);
    before
}

fn announces(msgs: &[(u64, Vec<u8>)], index: u64) -> bool {
    msgs.iter().any(|(k, p)| {
        *k == kind::RANGE
            && Range::from_bytes(p).ok()
                == Some(Range {
                    drop: false,
                    start: index,
                    length: 1,
                })
    })
}

/// A seeder holding blocks 0..10 gets block [`FAR`] from the writer after a hand-driven peer wanted
/// segment 0 (and, with `unwant`, took it back): returns whether the peer heard of the block.
async fn seeder_announces(name: &str, unwant: bool) -> bool {
    let w = writer(&format!("{name}-w"), LEN);
    let s = sparse_copy(&format!("{name}-s"), &w, &(0..10).collect::<Vec<_>>());
    let rs = Replicator::new(s.clone());
    let (ta, tb) = memory_pair();
    let _seeder_mux = replicate(ta, true, &HH, std::slice::from_ref(&rs));
    let peer_mux = Mux::new(tb);
    let ch = raw_peer(&peer_mux, &s).await;
    // The seeder opens with its head and its contiguous prefix.
    let (_, sync) = recv_until(&ch, kind::SYNC).await;
    assert_eq!(Sync::from_bytes(&sync).expect("sync").length, LEN);
    let (_, range) = recv_until(&ch, kind::RANGE).await;
    let prefix = Range {
        drop: false,
        start: 0,
        length: 10,
    };
    assert_eq!(Range::from_bytes(&range).expect("range"), prefix);
    let sync = Sync {
        fork: 0,
        length: 0,
        remote_length: LEN,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        ..Sync::default()
    };
    ch.send(kind::SYNC, &sync.to_bytes()).await.expect("send");
    let want = Want {
        start: 0,
        length: WANT_SEGMENT,
        any: false,
    };
    ch.send(kind::WANT, &want.to_bytes()).await.expect("send");
    // The answer: what it holds in the segment.
    let (_, answer) = recv_until(&ch, kind::RANGE).await;
    assert_eq!(Range::from_bytes(&answer).expect("range"), prefix);
    if unwant {
        ch.send(kind::UNWANT, &want.to_bytes()).await.expect("send");
    }
    // The seeder has read everything sent so far once it answers this.
    let before = request_block(&ch, 1, 0).await;
    assert!(!announces(&before, FAR));
    // Now the seeder gets the far block from the writer.
    let rw = Replicator::new(w.clone());
    let _m = connect(std::slice::from_ref(&rw), std::slice::from_ref(&rs));
    assert_eq!(
        timeout(T, rs.get(FAR)).await.expect("get").expect("ok"),
        block(FAR)
    );
    // The seeder queued any announcement before it reads the next request.
    let before = request_block(&ch, 2, 1).await;
    let heard = announces(&before, FAR);
    assert_eq!(rs.stats().haves_sent, u64::from(heard));
    heard
}

#[tokio::test]
async fn seeder_announces_later_blocks_to_a_peer_that_wants_their_segment() {
    assert!(seeder_announces("announce", false).await);
}

#[tokio::test]
async fn seeder_honours_unwant() {
    assert!(!seeder_announces("unwant", true).await);
}

#[tokio::test]
async fn extension_messages_between_replicators() {
    let w = writer("ext-w", 5);
    let r = reader("ext-r", w.key());
    let (rw, rr) = (Replicator::new(w.clone()), Replicator::new(r.clone()));
    let ew = rw.register_extension("x");
    let er = rr.register_extension("x");
    let other = rr.register_extension_with("other", ExtensionEncoding::Raw);
    let _m = connect(std::slice::from_ref(&rw), std::slice::from_ref(&rr));
    rw.wait_for_peers(1).await;
    rr.wait_for_peers(1).await;
    assert_eq!(ew.broadcast(b"hello"), 1);
    assert_eq!(
        ew.broadcast(b"again"),
        1,
        "same name: sent with an empty one"
    );
    let (from, m) = timeout(T, er.recv()).await.expect("recv");
    assert_eq!(m, b"hello");
    assert_eq!(timeout(T, er.recv()).await.expect("recv").1, b"again");
    assert!(er.send(from, b"reply"));
    let (_, m) = timeout(T, ew.recv()).await.expect("recv");
    assert_eq!(m, b"reply");
    // An extension the writer never registered: ignored there.
    assert_eq!(other.broadcast(b"nobody listens"), 1);
    assert!(er.send(from, b"after"));
    assert_eq!(timeout(T, ew.recv()).await.expect("recv").1, b"after");
    assert!(ew.try_recv().is_none());
    assert_eq!(rw.stats().extensions_received, 2);
    assert_eq!(rw.stats().extensions_dropped, 0);
    // Unregistered: later messages are ignored.
    let fence_w = rw.register_extension("fence");
    let fence_r = rr.register_extension("fence");
    drop(ew);
    assert_eq!(er.broadcast(b"gone"), 1);
    assert_eq!(er.broadcast(b"gone"), 1);
    // Once the writer has this, it has read (and ignored) the two before.
    assert_eq!(fence_r.broadcast(b"fence"), 1);
    assert_eq!(timeout(T, fence_w.recv()).await.expect("recv").1, b"fence");
    let ew = rw.register_extension("x");
    assert!(er.send(from, b"back"));
    assert_eq!(timeout(T, ew.recv()).await.expect("recv").1, b"back");
    assert!(ew.try_recv().is_none());
}

#[tokio::test]
async fn extension_names_from_a_hand_driven_peer() {
    let w = writer("extraw-w", 5);
    let rw = Replicator::new(w.clone());
    let ext = rw.register_extension_with("x", ExtensionEncoding::Raw);
    let (ta, tb) = memory_pair();
    let _mux = replicate(ta, true, &HH, std::slice::from_ref(&rw));
    let peer_mux = Mux::new(tb);
    let ch = raw_peer(&peer_mux, &w).await;
    let send = |name: &str, msg: &[u8]| {
        ExtensionMessage {
            name: name.to_owned(),
            message: msg.to_vec(),
        }
        .to_bytes()
    };
    for (name, msg) in [
        ("y", &b"1"[..]),
        ("", b"2"), // still "y": ignored
        ("x", b"3"),
        ("", b"4"), // "x"
        ("z", b"5"),
        ("x", b"6"),
    ] {
        ch.send(kind::EXTENSION, &send(name, msg))
            .await
            .expect("send");
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(timeout(T, ext.recv()).await.expect("recv").1);
    }
    assert_eq!(got, [b"3".to_vec(), b"4".to_vec(), b"6".to_vec()]);
    // Sending: the first message names the extension, a repeat does not.
    let peer = ext.peers()[0];
    assert!(ext.send(peer, b"a"));
    assert!(ext.send(peer, b"b"));
    let (_, first) = recv_until(&ch, kind::EXTENSION).await;
    let (_, second) = recv_until(&ch, kind::EXTENSION).await;
    let first = ExtensionMessage::from_bytes(&first).expect("ext");
    let second = ExtensionMessage::from_bytes(&second).expect("ext");
    assert_eq!(
        (first.name.as_str(), first.message.as_slice()),
        ("x", &b"a"[..])
    );
    assert_eq!(
        (second.name.as_str(), second.message.as_slice()),
        ("", &b"b"[..])
    );
    // A malformed extension message ends the peer, as any malformed message does.
    ch.send(kind::EXTENSION, &[0xff]).await.expect("send");
    until(&rw, |rw| rw.peers() == 0).await;
    assert_eq!(rw.stats().peers_dropped, 1);
}

#[tokio::test]
async fn a_want_over_many_runs_is_answered_with_an_exact_bitfield() {
    // 300 separate blocks: more runs than sent as ranges, so the answer is a bitfield, as JS sends.
    let w = writer("bits-w", 2000);
    let held: Vec<u64> = (0..300).map(|i| 1 + 2 * i + i / 7).collect();
    let s = sparse_copy("bits-s", &w, &held);
    let rs = Replicator::new(s.clone());
    let (ta, tb) = memory_pair();
    let _seeder_mux = replicate(ta, true, &HH, std::slice::from_ref(&rs));
    let peer_mux = Mux::new(tb);
    let ch = raw_peer(&peer_mux, &s).await;
    let want = Want {
        start: 0,
        length: WANT_SEGMENT,
        any: false,
    };
    ch.send(kind::WANT, &want.to_bytes()).await.expect("send");
    let (before, bits) = recv_until(&ch, kind::BITFIELD).await;
    assert!(before.iter().all(|(k, _)| *k != kind::RANGE), "no ranges");
    let bits = BitfieldMessage::from_bytes(&bits).expect("bitfield");
    assert_eq!(bits.start, 0);
    assert_eq!(bits.bitfield.len(), 2000usize.div_ceil(32));
    for i in 0..2000u64 {
        let word = bits.bitfield[(i / 32) as usize];
        assert_eq!(word >> (i % 32) & 1 == 1, held.contains(&i), "bit {i}");
    }
    // A repeat of a want still in force is not answered again; the next request is answered first.
    ch.send(kind::WANT, &want.to_bytes()).await.expect("send");
    let before = request_block(&ch, 1, 1).await;
    assert!(before.iter().all(|(k, _)| *k != kind::BITFIELD));
    assert_eq!(rs.stats().wants_received, 2);

    // And a Rust reader downloading everything learns all 300 blocks from it with one want.
    let r = reader("bits-r", w.key());
    let rr = Replicator::new(r.clone());
    let _m = connect(std::slice::from_ref(&rs), std::slice::from_ref(&rr));
    assert_eq!(timeout(T, rr.update()).await.expect("update"), 2000);
    let _all = rr.download_all();
    // (A block is stored before the replicator counts it: wait for both.)
    let n = held.len() as u64;
    until(&rr, |rr| {
        rr.core().stored_blocks() == n && rr.stats().blocks_downloaded == n
    })
    .await;
    assert_eq!(rr.stats().wants_sent, 1);
    assert_eq!(rr.stats().no_data_received, 0);
}

mod props {
    use super::*;
    use holepunch_cores::hypercore::replicator::{ReplicatorCore, MAX_EXTENSION_INBOX};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn seeder() -> &'static Hypercore {
        static CORE: OnceLock<Hypercore> = OnceLock::new();
        CORE.get_or_init(|| {
            let w = writer("props-w", 3000);
            sparse_copy("props-s", &w, &[0, 1, 2, 100, 101, 2500, 2999])
        })
    }

    fn message() -> impl Strategy<Value = (u64, Vec<u8>)> {
        let want = (any::<u64>(), any::<u64>(), any::<bool>(), 0u64..4).prop_map(
            |(start, length, any, shape)| {
                // Mostly plausible ranges, sometimes arbitrary ones.
                let (start, length) = match shape {
                    0 => ((start % 4) * WANT_SEGMENT, WANT_SEGMENT),
                    1 => (start % 4000, length % 5000),
                    2 => ((start % 100) * 64, 64),
                    _ => (start, length),
                };
                Want { start, length, any }.to_bytes()
            },
        );
        let ext = ("[xyz]?", proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(name, message)| ExtensionMessage { name, message }.to_bytes());
        prop_oneof![
            want.clone().prop_map(|b| (kind::WANT, b)),
            want.prop_map(|b| (kind::UNWANT, b)),
            ext.prop_map(|b| (kind::EXTENSION, b)),
            (5u64..10, proptest::collection::vec(any::<u8>(), 0..12)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Wants, unwants and extension messages (well-formed, lying or garbage) never panic the replicator;
        /// what it queues in answer stays bounded and the extension inbox keeps its bound.
        #[test]
        fn wants_and_extensions_never_panic(msgs in proptest::collection::vec(message(), 0..60)) {
            let core = seeder();
            let mut rc = ReplicatorCore::new(core.clone());
            rc.register_extension("x", ExtensionEncoding::Buffer);
            rc.register_extension("y", ExtensionEncoding::Raw);
            let (peer, _) = rc.add_peer(true, &HH);
            let cap = caps::replicate(false, &core.key(), &HH).expect("cap");
            rc.on_open(peer, &Handshake { seeks: false, capability: cap }.to_bytes()).expect("open");
            for (k, payload) in msgs {
                if rc.on_message(peer, k, &payload).is_err() {
                    break;
                }
                let mut queued = 0usize;
                while let Some((_, m)) = rc.poll_transmit(peer) {
                    queued += m.len();
                }
                // At most one segment's worth of answer per message.
                prop_assert!(queued <= 300_000, "{queued} bytes queued");
            }
            let mut delivered = 0;
            while rc.poll_extension("x").is_some() || rc.poll_extension("y").is_some() {
                delivered += 1;
            }
            prop_assert!(delivered <= 2 * MAX_EXTENSION_INBOX);
            prop_assert_eq!(core.stored_blocks(), 7);
        }

        /// A `c.buffer` extension payload decodes only when its length prefix fits; truncations fail.
        #[test]
        fn buffer_encoding_truncations_fail(msg in proptest::collection::vec(any::<u8>(), 0..300)) {
            let wire = ExtensionEncoding::Buffer.encode(&msg);
            prop_assert_eq!(ExtensionEncoding::Buffer.decode(&wire), Some(msg.clone()));
            for cut in 0..wire.len() {
                prop_assert_eq!(ExtensionEncoding::Buffer.decode(&wire[..cut]), None);
            }
        }
    }
}
