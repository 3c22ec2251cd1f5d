//! Bases replicating over protomux streams in one process (in-memory transports): the writer cores through
//! per-core replicators, new writers found through the system and through wakeup announces; every base must
//! converge to the same view and system state. A peer joining a base with a long history fast-forwards from
//! the system and view cores the others serve at their signed lengths, and downloads only the writers'
//! blocks past what the system indexed (and the window it read before it could fast-forward).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use holepunch_cores::autobase::base::{prepare_fast_forward, Autobase, AutobaseOptions};
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::autobase::messages::{BootRecord, Checkout};
use holepunch_cores::autobase::replicate::{
    fast_forward, sync_base, BaseReplicator, WRITER_WINDOW,
};
use holepunch_cores::corestore::Corestore;
use holepunch_cores::hypercore::messages::Data;
use holepunch_cores::hypercore::replicator::{kind, PeerId, ReplicatorCore};
use holepunch_streams::protomux::{memory_pair, Mux};
use holepunch_wire::compact_encoding::{Decode, Encode};

type Base = Autobase<Kv>;

use super::autobase_base::list;

const T: Duration = Duration::from_secs(60);

struct Peer {
    base: Base,
    repl: BaseReplicator,
}

fn peer(dir: &tempfile::TempDir, name: &str, seed: u8, bootstrap: Option<[u8; 32]>) -> Peer {
    let store = Corestore::open_with_primary_key(dir.path().join(name), [seed; 32]).unwrap();
    let mut base = Autobase::open(
        store.clone(),
        Kv,
        AutobaseOptions {
            bootstrap,
            ..Default::default()
        },
    )
    .unwrap();
    let repl = BaseReplicator::new(store, base.key());
    sync_base(&mut base, &repl).unwrap();
    Peer { base, repl }
}

/// Connects two peers over an in-memory stream (the same handshake hash on both ends, as a Noise stream has).
fn connect(a: &Peer, b: &Peer) -> (Mux, Mux) {
    let (ta, tb) = memory_pair();
    let hh = [9u8; 64];
    let (ma, ()) = Mux::new_with(ta, |m| a.repl.attach(m, true, &hh, None));
    let (mb, ()) = Mux::new_with(tb, |m| b.repl.attach(m, false, &hh, None));
    (ma, mb)
}

fn op(b: &mut Peer, o: &KvOp) {
    b.base.append(Some(&o.to_json())).unwrap();
    sync_base(&mut b.base, &b.repl).unwrap();
}

fn put(b: &mut Peer, k: &str, v: &str) {
    op(
        b,
        &KvOp::Put {
            key: k.into(),
            value: v.into(),
        },
    );
}

type State = (
    Vec<(String, String)>,
    u64,
    Vec<Checkout>,
    Vec<Checkout>,
    u64,
);

fn state(b: &Base) -> State {
    let s = b.system();
    let mut heads = s.heads.clone();
    heads.sort_by_key(|h| h.key);
    (
        list(b),
        s.members,
        s.indexers.clone(),
        heads,
        b.state().indexed_length(),
    )
}

/// Runs every peer's sync round until `done` holds, waking on the replicators' changes (no sleeps), at most
/// `T` in all.
async fn until(peers: &mut [&mut Peer], done: impl Fn(&[&mut Peer]) -> bool) {
    let mut rxs: Vec<_> = peers.iter().map(|p| p.repl.changed()).collect();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        for p in peers.iter_mut() {
            sync_base(&mut p.base, &p.repl).unwrap();
            // what JS's ack timer does: an indexer acks when the linearizer says one is due
            if p.base.is_indexer() && p.base.ack().unwrap() {
                sync_base(&mut p.base, &p.repl).unwrap();
            }
            if fast_forward(&mut p.base, &p.repl, T).await.unwrap() {
                sync_base(&mut p.base, &p.repl).unwrap();
            }
        }
        if done(peers) {
            return;
        }
        let any = futures_any(&mut rxs);
        assert!(
            tokio::time::timeout_at(deadline, any).await.is_ok(),
            "peers did not converge: {:?}",
            peers.iter().map(|p| state(&p.base)).collect::<Vec<_>>()
        );
    }
}

async fn futures_any(rxs: &mut [tokio::sync::watch::Receiver<u64>]) {
    let futs: Vec<_> = rxs
        .iter_mut()
        .map(|rx| Box::pin(async move { rx.changed().await.is_ok() }))
        .collect();
    let _ = futures_select(futs).await;
}

async fn futures_select<F: std::future::Future<Output = bool> + Unpin>(mut futs: Vec<F>) -> bool {
    std::future::poll_fn(|cx| {
        for f in &mut futs {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn same(peers: &[&mut Peer]) -> bool {
    let first = state(&peers[0].base);
    peers.iter().all(|p| state(&p.base) == first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bases_converge_over_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = peer(&dir, "a", 1, None);
    let key = a.base.key();
    let mut b = peer(&dir, "b", 2, Some(key));
    let mut c = peer(&dir, "c", 3, Some(key));
    // a line: a - b - c (c reaches a's blocks only through b's store)
    let _ab = connect(&a, &b);
    let _bc = connect(&b, &c);
    put(&mut a, "from-a", "1");
    let (bk, ck) = (b.base.local_key(), c.base.local_key());
    op(
        &mut a,
        &KvOp::AddWriter {
            key: bk,
            indexer: true,
        },
    );
    op(
        &mut a,
        &KvOp::AddWriter {
            key: ck,
            indexer: false,
        },
    );
    until(&mut [&mut a, &mut b, &mut c], |p| {
        p[1].base.writable().unwrap() && p[2].base.writable().unwrap() && same(p)
    })
    .await;
    // all three write without waiting for each other
    put(&mut a, "k", "a");
    put(&mut b, "k", "b");
    put(&mut c, "k", "c");
    put(&mut b, "from-b", "2");
    put(&mut c, "from-c", "3");
    until(&mut [&mut a, &mut b, &mut c], |p| {
        same(p) && list(&p[0].base).len() == 4
    })
    .await;
    let s = state(&a.base);
    assert_eq!(s.1, 3, "three members");
    assert_eq!(s.2.len(), 2, "two indexers");
    assert!(
        s.4 > 0,
        "the indexers acked: something is indexed, the same on every peer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_peer_catches_up_through_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = peer(&dir, "a", 1, None);
    let key = a.base.key();
    let mut b = peer(&dir, "b", 2, Some(key));
    let mut c = peer(&dir, "c", 3, Some(key));
    // a adds b, b writes; then c, which only knows the bootstrap key, connects to b alone
    let _ab = connect(&a, &b);
    op(
        &mut a,
        &KvOp::AddWriter {
            key: b.base.local_key(),
            indexer: false,
        },
    );
    until(&mut [&mut a, &mut b], |p| p[1].base.writable().unwrap()).await;
    put(&mut b, "from-b", "1");
    let _bc = connect(&b, &c);
    until(&mut [&mut a, &mut b, &mut c], |p| {
        same(p) && list(&p[2].base).len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announces_its_unindexed_writers_and_the_hint_opens_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = peer(&dir, "a", 1, None);
    let key = a.base.key();
    let mut b = peer(&dir, "b", 2, Some(key));
    let mut c = peer(&dir, "c", 3, Some(key));
    let bk = b.base.local_key();
    let _ab = connect(&a, &b);
    op(
        &mut a,
        &KvOp::AddWriter {
            key: bk,
            indexer: false,
        },
    );
    until(&mut [&mut a, &mut b], |p| p[1].base.writable().unwrap()).await;
    put(&mut b, "from-b", "1");
    // not indexed yet (a has not acked it): b wakes peers up with its writer
    let wakeup = b.base.wakeup();
    assert!(wakeup.contains(&(bk, 1)), "{wakeup:?}");
    // c, which knows nothing but the base key, hears of b's writer from b's wakeup channel
    let _bc = connect(&b, &c);
    let mut rx = c.repl.changed();
    let deadline = tokio::time::Instant::now() + T;
    let hint = loop {
        if let Some(h) = c.repl.take_hints().into_iter().find(|h| h.key == bk) {
            break h;
        }
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("no announce of b's writer")
            .unwrap();
    };
    assert_eq!(hint.length, 1);
    assert!(!c.base.writers().contains(&bk));
    c.base.hint_writer(hint.key, hint.length).unwrap();
    assert!(
        c.base.writers().contains(&bk),
        "the hint made c read b's writer"
    );
    until(&mut [&mut b, &mut c], same).await;
}

/// A creator with `n` puts (`k00000`.. = `0`..), written without a network: one indexer, so every put is
/// indexed at once and its next block signs the system and view cores.
fn history(dir: &tempfile::TempDir, n: usize) -> Peer {
    let mut a = peer(dir, "a", 1, None);
    for i in 0..n {
        let o = KvOp::Put {
            key: format!("k{i:05}"),
            value: i.to_string(),
        };
        a.base.append(Some(&o.to_json())).unwrap();
    }
    sync_base(&mut a.base, &a.repl).unwrap();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_peer_fast_forwards_and_reads_the_whole_view() {
    const PUTS: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let mut a = history(&dir, PUTS);
    let written = a.base.local().length();
    let signed = a.base.system().db().core().signed_length();
    assert!(
        signed + 16 >= a.base.state().indexed_length() && signed > 0,
        "the system core is signed near its indexed length: {signed}"
    );
    let mut b = peer(&dir, "b", 2, Some(a.base.key()));
    let _ab = connect(&a, &b);
    until(&mut [&mut a, &mut b], |p| {
        list(&p[1].base).len() == PUTS && same(p)
    })
    .await;
    let stats = b.base.state().stats();
    assert_eq!(stats.fast_forwards, 1, "{stats:?}");
    // the boot record says so (JS's fastForwarding flag), until the next one is written
    let boot = b.base.local().get_user_data("autobase/boot").unwrap();
    let boot = BootRecord::decode(&boot).unwrap();
    assert!(boot.fast_forwarding, "{boot:?}");
    assert_eq!(boot.key, b.base.system().db().core().key());
    // the whole view reads the same, from view blocks b downloaded (not rebuilt from writer blocks)
    assert_eq!(list(&b.base), list(&a.base));
    let held = b
        .base
        .writer_core(&a.base.local_key())
        .unwrap()
        .unwrap()
        .info()
        .stored_blocks;
    // what b read before it could fast-forward (a window or two of WRITER_WINDOW), and the tail
    assert!(
        held * 2 < written,
        "b holds {held} of the {written} writer blocks"
    );
    eprintln!("a late peer holds {held} of the writer's {written} blocks (window {WRITER_WINDOW})");
    // b applied only what followed the fast-forward: far fewer batches than a
    assert!(
        stats.batches * 2 < a.base.state().stats().batches,
        "{stats:?}"
    );
    // and it goes on: a's next put reaches b through the writer's tail
    put(&mut a, "after", "1");
    until(&mut [&mut a, &mut b], |p| {
        list(&p[1].base).len() == PUTS + 1 && same(p)
    })
    .await;
    // a reopen after the fast-forward starts from its boot record (same store: the cores stay open)
    let store = b.base.store().clone();
    let key = a.base.key();
    let Peer { base, repl: _repl } = b;
    drop(base);
    let b2 = Autobase::open(
        store,
        Kv,
        AutobaseOptions {
            bootstrap: Some(key),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(list(&b2), list(&a.base));
    assert_eq!(b2.state().stats().fast_forwards, 0);
}

#[test]
fn signed_lengths_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = Corestore::open_with_primary_key(dir.path().join("a"), [1; 32]).unwrap();
        Autobase::open(store, Kv, AutobaseOptions::default()).unwrap()
    };
    let mut a = open();
    for i in 0..40 {
        let o = KvOp::Put {
            key: format!("k{i}"),
            value: i.to_string(),
        };
        a.append(Some(&o.to_json())).unwrap();
    }
    let signed = |b: &Base| {
        (
            b.system().db().core().signed_length(),
            b.view().core().signed_length(),
        )
    };
    let before = signed(&a);
    assert!(before.0 > 0 && before.1 > 0, "{before:?}");
    drop(a);
    let a = open();
    assert_eq!(
        signed(&a),
        before,
        "the committed multi-signatures are kept"
    );
}

/// Runs two replicator cores back to back until quiet, `tamper` rewriting each message from `srv` to
/// `vic`; returns the peers `vic` dropped.
fn exchange(
    srv: &mut ReplicatorCore,
    vic: &mut ReplicatorCore,
    tamper: impl Fn(u64, Vec<u8>) -> Vec<u8>,
) -> Vec<PeerId> {
    let hh = [9u8; 64];
    let (ps, hs_s) = srv.add_peer(true, &hh);
    let (pv, hs_v) = vic.add_peer(false, &hh);
    srv.on_open(ps, &hs_v).unwrap();
    vic.on_open(pv, &hs_s).unwrap();
    let mut dropped = Vec::new();
    // a bounded number of exchanges: the handshake, the sync, the upgrade request and its answer take a few
    for _ in 0..64 {
        let to_v: Vec<_> = std::iter::from_fn(|| srv.poll_transmit(ps)).collect();
        let to_s: Vec<_> = std::iter::from_fn(|| vic.poll_transmit(pv)).collect();
        for (k, m) in to_v {
            let _ = vic.on_message(pv, k, &tamper(k, m));
        }
        for (k, m) in to_s {
            let _ = srv.on_message(ps, k, &m);
        }
        srv.run_effects();
        dropped.extend(vic.run_effects().into_iter().map(|(p, _)| p));
    }
    dropped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_core_whose_signature_does_not_verify_is_not_fast_forwarded_to() {
    let dir = tempfile::tempdir().unwrap();
    let a = history(&dir, 40);
    let sys = a.base.system().db().core().clone();
    let (signed, fork) = sys.replicated_head();
    assert!(
        signed > 20 && fork == 0,
        "served at the signed length: {signed}"
    );
    assert!(sys.length() >= signed);
    // a late peer's copy of that system core, taking upgrades as a fast-forward does
    let b = peer(&dir, "b", 2, Some(a.base.key()));
    let copy = b
        .base
        .store()
        .get_by_key(sys.key(), sys.manifest())
        .unwrap();
    prepare_fast_forward(&copy).unwrap();
    // a peer whose signed head carries a bad signature: refused, nothing stored, the peer dropped
    let bad = |k: u64, m: Vec<u8>| {
        if k != kind::DATA {
            return m;
        }
        let mut d = Data::from_bytes(&m).unwrap();
        if let Some(sig) = d.upgrade.as_mut().and_then(|u| u.signature.as_mut()) {
            sig[7] ^= 1;
        }
        d.to_bytes()
    };
    let dropped = exchange(
        &mut ReplicatorCore::new(sys.clone()),
        &mut ReplicatorCore::new(copy.clone()),
        bad,
    );
    assert_eq!(
        dropped.len(),
        1,
        "the peer with the bad signature is dropped"
    );
    assert_eq!((copy.length(), copy.signed_length()), (0, 0));
    // the same head untouched: taken, signed by the indexers' multi-signature
    let dropped = exchange(
        &mut ReplicatorCore::new(sys.clone()),
        &mut ReplicatorCore::new(copy.clone()),
        |_, m| m,
    );
    assert!(dropped.is_empty());
    assert_eq!((copy.length(), copy.signed_length()), (signed, signed));
}
