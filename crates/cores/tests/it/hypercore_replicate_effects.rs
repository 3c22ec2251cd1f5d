//! The sans-IO replicator hands its disk work to the driver as effects: a received proof is stored
//! ([`Effect::Store`]) and a request is read ([`Effect::Serve`]) outside it, and only the completion makes a
//! block ours (announced, counted) or sends an answer. Three `ReplicatorCore`s wired back to back, effects
//! performed by hand.

use holepunch_cores::hypercore::messages::{Data, Range};
use holepunch_cores::hypercore::replicator::{
    kind, Effect, Event, PeerError, PeerId, ReplicatorCore, MAX_SERVING,
};
use holepunch_cores::hypercore::{Durability, Hypercore};
use holepunch_wire::compact_encoding::{Decode, Encode};
use holepunch_wire::crypto::KeyPair;

const HH: [u8; 64] = [9; 64];

fn writer(name: &str, blocks: u64) -> Hypercore {
    let core = Hypercore::create(testkit::scratch_dir(name), KeyPair::from_seed(&[3; 32]))
        .expect("create");
    core.set_durability(Durability::Process);
    let data: Vec<Vec<u8>> = (0..blocks)
        .map(|i| format!("block {i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    core.append(&refs).expect("append");
    core
}

fn reader(name: &str, key: [u8; 32]) -> Hypercore {
    let core = Hypercore::create_reader(testkit::scratch_dir(name), key, None).expect("reader");
    core.set_durability(Durability::Process);
    core
}

/// One end of a connection between two replicator cores.
struct End {
    peer: PeerId,
}

/// Connects `a` and `b` (a is the initiator) and opens the channel on both sides.
fn connect(a: &mut ReplicatorCore, b: &mut ReplicatorCore) -> (End, End) {
    let (pa, hs_a) = a.add_peer(true, &HH);
    let (pb, hs_b) = b.add_peer(false, &HH);
    a.on_open(pa, &hs_b).expect("a open");
    b.on_open(pb, &hs_a).expect("b open");
    (End { peer: pa }, End { peer: pb })
}

fn take(rc: &mut ReplicatorCore, end: &End) -> Vec<(u64, Vec<u8>)> {
    std::iter::from_fn(|| rc.poll_transmit(end.peer)).collect()
}

/// Delivers messages both ways until neither side has any, without performing effects.
fn pump(a: &mut ReplicatorCore, ea: &End, b: &mut ReplicatorCore, eb: &End) {
    loop {
        let (to_b, to_a) = (take(a, ea), take(b, eb));
        if to_b.is_empty() && to_a.is_empty() {
            return;
        }
        for (k, m) in to_b {
            b.on_message(eb.peer, k, &m).expect("b accepts");
        }
        for (k, m) in to_a {
            a.on_message(ea.peer, k, &m).expect("a accepts");
        }
    }
}

/// Pumps and performs effects on both sides until all is quiet.
fn settle(a: &mut ReplicatorCore, ea: &End, b: &mut ReplicatorCore, eb: &End) {
    loop {
        pump(a, ea, b, eb);
        let ra = a.run_effects();
        let rb = b.run_effects();
        assert!(ra.is_empty() && rb.is_empty(), "{ra:?} {rb:?}");
        if !a.is_storing() && !b.is_storing() && take_peek_empty(a, ea) && take_peek_empty(b, eb) {
            return;
        }
    }
}

fn take_peek_empty(rc: &ReplicatorCore, end: &End) -> bool {
    !rc.peers_with_output().contains(&end.peer)
}

fn effects(rc: &mut ReplicatorCore) -> Vec<Effect> {
    std::iter::from_fn(|| rc.poll_effect()).collect()
}

fn ranges(msgs: &[(u64, Vec<u8>)]) -> Vec<Range> {
    msgs.iter()
        .filter(|(k, _)| *k == kind::RANGE)
        .map(|(_, m)| Range::from_bytes(m).expect("range"))
        .collect()
}

/// A block from a peer is ours (announced to other peers, counted) only once its store completed; until
/// then it is neither announced nor asked of anyone else.
#[test]
fn a_block_is_announced_only_after_its_store_completes() {
    let w = writer("hc-fx-announce-w", 10);
    let r = reader("hc-fx-announce-r", w.key());
    let other = reader("hc-fx-announce-o", w.key());
    let (mut wc, mut rc, mut oc) = (
        ReplicatorCore::new(w.clone()),
        ReplicatorCore::new(r.clone()),
        ReplicatorCore::new(other),
    );
    let (r_w, w_r) = connect(&mut rc, &mut wc);
    let (r_o, o_r) = connect(&mut rc, &mut oc);
    settle(&mut rc, &r_w, &mut wc, &w_r);
    settle(&mut rc, &r_o, &mut oc, &o_r);
    assert_eq!(r.length(), 10, "the upgrade was stored");

    rc.want_block(5);
    pump(&mut rc, &r_w, &mut wc, &w_r);
    // the writer reads the block in storage, then answers
    let serve = effects(&mut wc);
    assert!(
        matches!(serve.as_slice(), [Effect::Serve { request, .. }] if request.block.is_some_and(|b| b.index == 5))
    );
    assert!(take(&mut wc, &w_r).is_empty(), "no answer before the read");
    for e in serve {
        let done = e.perform(&w);
        wc.complete(done).expect("served");
    }
    pump(&mut rc, &r_w, &mut wc, &w_r);
    // the reader got the data: a store, nothing stored or told yet
    let store = effects(&mut rc);
    assert!(
        matches!(store.as_slice(), [Effect::Store { data, .. }] if data.block.as_ref().is_some_and(|b| b.index == 5))
    );
    assert!(!r.has(5));
    assert!(rc.is_storing_range(5, 6));
    rc.update();
    assert!(
        ranges(&take(&mut rc, &r_o)).is_empty(),
        "not announced before stored"
    );
    assert!(
        take(&mut rc, &r_w).is_empty(),
        "not asked again while storing"
    );
    assert_eq!(rc.stats().blocks_downloaded, 0);

    for e in store {
        let done = e.perform(&r);
        assert!(r.has(5), "on disk once performed");
        rc.complete(done).expect("stored");
    }
    assert!(!rc.is_storing());
    assert_eq!(rc.stats().blocks_downloaded, 1);
    assert!(std::iter::from_fn(|| rc.poll_event())
        .any(|e| matches!(e, Event::Downloaded { index: 5, .. })));
    // block 5 is among the last blocks: announced to the other peer now
    assert_eq!(
        ranges(&take(&mut rc, &r_o)),
        vec![Range {
            drop: false,
            start: 5,
            length: 1
        }]
    );
}

/// At most `MAX_SERVING` requests of a peer are read at once; the rest wait and go to storage as answers
/// come in, and everything is answered in the end.
#[test]
fn reads_for_a_peer_are_bounded_and_all_answered() {
    let n = 3 * MAX_SERVING as u64;
    let w = writer("hc-fx-serve-w", n);
    let r = reader("hc-fx-serve-r", w.key());
    let (mut wc, mut rc) = (
        ReplicatorCore::new(w.clone()),
        ReplicatorCore::new(r.clone()),
    );
    let (r_w, w_r) = connect(&mut rc, &mut wc);
    settle(&mut rc, &r_w, &mut wc, &w_r);
    rc.add_range(0, None);
    pump(&mut rc, &r_w, &mut wc, &w_r);
    let first = effects(&mut wc);
    assert_eq!(first.len(), MAX_SERVING);
    assert!(first.iter().all(|e| matches!(e, Effect::Serve { .. })));
    for e in first {
        let done = e.perform(&w);
        wc.complete(done).expect("served");
    }
    let answers = take(&mut wc, &w_r);
    assert_eq!(
        answers.iter().filter(|(k, _)| *k == kind::DATA).count(),
        MAX_SERVING
    );
    for (k, m) in answers {
        rc.on_message(r_w.peer, k, &m).expect("answer");
    }
    assert!(
        wc.is_storing(),
        "the held requests went to storage as answers came in"
    );
    settle(&mut rc, &r_w, &mut wc, &w_r);
    assert_eq!(r.stored_blocks(), n);
    assert_eq!(rc.stats().blocks_downloaded, n);
    assert_eq!(wc.stats().blocks_uploaded, n);
    assert_eq!(r.tree_hash(), w.tree_hash());
}

/// Data that fails verification when it is stored drops the peer that sent it; nothing is stored.
#[test]
fn invalid_data_found_in_storage_drops_the_peer() {
    let w = writer("hc-fx-bad-w", 8);
    let r = reader("hc-fx-bad-r", w.key());
    let (mut wc, mut rc) = (
        ReplicatorCore::new(w.clone()),
        ReplicatorCore::new(r.clone()),
    );
    let (r_w, w_r) = connect(&mut rc, &mut wc);
    settle(&mut rc, &r_w, &mut wc, &w_r);
    rc.want_block(3);
    for (k, m) in take(&mut rc, &r_w) {
        wc.on_message(w_r.peer, k, &m).expect("request");
    }
    wc.run_effects();
    let (_, data) = take(&mut wc, &w_r)
        .into_iter()
        .find(|(k, _)| *k == kind::DATA)
        .expect("data");
    let mut data = Data::from_bytes(&data).expect("data");
    if let Some(b) = data.block.as_mut() {
        b.value[0] ^= 1;
    }
    rc.on_message(r_w.peer, kind::DATA, &data.to_bytes())
        .expect("matches its request: checked in storage");
    assert_eq!(rc.open_peers(), 1);
    let dropped = rc.run_effects();
    assert!(matches!(dropped.as_slice(), [(p, PeerError::InvalidData(_))] if *p == r_w.peer));
    assert!(matches!(
        rc.peer_error(r_w.peer),
        Some(PeerError::InvalidData(_))
    ));
    assert_eq!(rc.open_peers(), 0);
    assert!(!r.has(3));
    assert!(!rc.is_storing());
}
